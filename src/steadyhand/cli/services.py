"""`steadyhand service hold|release NAME`: stop calls to a remote service by hand, and let
them flow again.

    steadyhand service hold flights --reason "airline maintenance until 03:00"
    steadyhand service release flights

A held service's calls wait exactly as with an open circuit (no attempt spent), across
every worker, until released; both are recorded as service facts and shown by `stats`,
the dashboard and the metrics. Exit codes: 0 done, 4 no such service, 5 nothing to do
(already held, or not held).
"""

from __future__ import annotations

import sys

import click

from steadyhand.cli.options import EXIT_NOT_APPLICABLE, client_for, db_option, guarded


@click.group()
def service() -> None:
    """Hold or release a remote service by hand."""


@service.command("hold")
@click.argument("name")
@click.option("--reason", default="", help="Why (recorded, and shown to everyone who looks).")
@db_option
@guarded
def hold_command(name: str, reason: str, db: str | None) -> None:
    """Hold every new call to NAME until it is released."""
    client = client_for(db)
    try:
        changed = client.hold_service(name, reason)
    finally:
        client.close()
    if not changed:
        click.echo(f"{name} is already held; nothing changed")
        sys.exit(EXIT_NOT_APPLICABLE)
    click.echo(f"{name} held: calls to it wait until `steadyhand service release {name}`")


@service.command("release")
@click.argument("name")
@click.option("--reason", default="", help="Why (recorded).")
@db_option
@guarded
def release_command(name: str, reason: str, db: str | None) -> None:
    """Let calls to NAME flow again, and wake the workflows that waited."""
    client = client_for(db)
    try:
        changed = client.release_service(name, reason)
    finally:
        client.close()
    if not changed:
        click.echo(f"{name} is not held; nothing changed")
        sys.exit(EXIT_NOT_APPLICABLE)
    click.echo(f"{name} released: calls flow again")
