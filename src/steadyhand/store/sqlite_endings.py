"""Hearing workflows end, on SQLite: each connection of the store carries a TEMP trigger
that notes the id of every workflow whose terminal fact it inserts; after the commit, the
store sends those ids to the `ENDED` sockets of its wake-up channel (`store.wakeup`), and
`SqliteEndings` listens on one such socket per store (see `store.endings`).

The trigger is TEMP (it lives in the connection, not in the file) because only a
connection of ours knows the function it calls: another program writing the file, or an
older steadyhand, is not affected, and its ends are found by the waiters' poll.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from steadyhand.core.facts import TERMINAL_KINDS
from steadyhand.store.endings import Endings, Source
from steadyhand.store.wakeup import ENDED, channel_dir

FUNCTION = "steadyhand_noted_end"
_KINDS = ", ".join(f"'{kind}'" for kind in sorted(TERMINAL_KINDS))
_TRIGGER = f"""
    CREATE TEMP TRIGGER IF NOT EXISTS steadyhand_note_end AFTER INSERT ON main.facts
    WHEN NEW.kind IN ({_KINDS})
    BEGIN SELECT {FUNCTION}(NEW.workflow_id); END
"""
_DROP_TRIGGER = "DROP TRIGGER IF EXISTS temp.steadyhand_note_end"


def note_ends(conn: sqlite3.Connection, noted: Callable[[str], None]) -> bool:
    """Make `conn` call `noted(workflow_id)` for each terminal fact it inserts; False while
    the store has no facts table yet (before its first migration)."""
    conn.create_function(FUNCTION, 1, noted)
    try:
        conn.execute(_TRIGGER)
    except sqlite3.OperationalError:
        return False
    return True


def forget_ends(conn: sqlite3.Connection) -> None:
    """Drop the trigger (before a migration, which may rebuild the facts table)."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute(_DROP_TRIGGER)


class SqliteEndings(Endings):
    """Listens on a socket of the store's wake-up channel for the ids of workflows that
    ended. A datagram can be lost (a full queue), so waiters re-read every second."""

    recheck = 1.0

    def __init__(self, db_path: Path) -> None:
        super().__init__(f"steadyhand-{db_path.name}")
        self._dir = channel_dir(db_path)

    def _connect(self) -> Source:
        self._dir.mkdir(mode=0o700, exist_ok=True)
        address = str(self._dir / f"{os.getpid()}-{secrets.token_hex(4)}{ENDED}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(address)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return _Socket(sock, address)


class _Socket:
    def __init__(self, sock: socket.socket, address: str) -> None:
        self._sock = sock
        self._address = address

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self) -> Iterable[str | None]:
        ended: list[str | None] = []
        while True:
            try:
                payload = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return ended
            ended.extend(part or None for part in payload.decode(errors="replace").split("\n"))

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self._address)
