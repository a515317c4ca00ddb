"""Hearing workflows end, on PostgreSQL: migration 007's trigger NOTIFYs
`steadyhand_ended_<schema>` with the workflow id whenever a terminal fact is appended, and
`listen_endings` LISTENs there on its own async connection, so a waiting client wakes the
moment its workflow ends instead of polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg
from psycopg import sql


def endings_channel(schema: str) -> str:
    """The channel the trigger notifies for `schema` (PostgreSQL cuts names at 63 bytes)."""
    return f"steadyhand_ended_{schema}"[:63]


async def listen_endings(
    conninfo: str, schema: str, on_end: Callable[[str], None], ready: asyncio.Event
) -> None:
    """Call `on_end(workflow_id)` for every ending in `schema`; sets `ready` once listening.
    Runs until cancelled or the connection drops (the caller then falls back to polling)."""
    conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
    try:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(endings_channel(schema))))
        ready.set()
        async for note in conn.notifies():
            on_end(note.payload)
    finally:
        await conn.close()
