"""`steadyhand schedules list|pause|resume|trigger`: the recurring workflows of a store.

Schedules are declared in code (`app.schedule(...)`) and published by the workers; these
commands show them and steer them without a deploy. Exit codes: 0 done, 4 no such
schedule, 2 bad input.
"""

from __future__ import annotations

import click

from steadyhand.cli.options import app_option, db_option, guarded, load_app
from steadyhand.core import jsoncodec
from steadyhand.core.schedules import ScheduleSpec
from steadyhand.engine.engine import Engine
from steadyhand.engine.schedules import set_paused
from steadyhand.ops.timetext import when
from steadyhand.store import open_store, scheduling


@click.group()
def schedules() -> None:
    """List, pause, resume or trigger schedules."""


@schedules.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@db_option
@guarded
def list_schedules(as_json: bool, db: str | None) -> None:
    """Every schedule: when it runs, its next tick, its last run and what it skipped."""
    store = open_store(db)
    try:
        with store.snapshot() as tx:
            rows = scheduling.every_schedule(tx)
    finally:
        store.close()
    if as_json:
        click.echo(jsoncodec.pretty([_json(r) for r in rows]))
        return
    if not rows:
        click.echo("no schedules (they are published by workers of an App that declares them)")
    for row in rows:
        spec = ScheduleSpec.from_json(row.spec)
        state = "paused" if row.paused else f"next {when(row.next_at)}"
        last = f"last {row.last_workflow_id} at {when(row.last_tick)}" if row.last_tick else ""
        skipped = f", {row.skipped} skipped" if row.skipped else ""
        click.echo(f"{row.name}  {spec.workflow}  {spec.describe()}  {state}  {last}{skipped}")


def _json(row: scheduling.ScheduleRow) -> dict[str, object]:
    spec = ScheduleSpec.from_json(row.spec)
    return {
        "name": row.name,
        "workflow": spec.workflow,
        "when": spec.describe(),
        "overlap": spec.overlap,
        "catch_up": spec.catch_up,
        "paused": row.paused,
        "next_at": None if row.paused else row.next_at,
        "last_tick": row.last_tick,
        "last_workflow_id": row.last_workflow_id,
        "skipped": row.skipped,
    }


@schedules.command()
@click.argument("name")
@db_option
@guarded
def pause(name: str, db: str | None) -> None:
    """Stop starting NAME's workflows (its ticks pass by) until resumed."""
    store = open_store(db)
    try:
        set_paused(store, name, True)
    finally:
        store.close()
    click.echo(f"{name} paused")


@schedules.command()
@click.argument("name")
@db_option
@guarded
def resume(name: str, db: str | None) -> None:
    """Start NAME's workflows again, from its next tick (paused ticks are not caught up)."""
    store = open_store(db)
    try:
        set_paused(store, name, False)
    finally:
        store.close()
    click.echo(f"{name} resumed")


@schedules.command()
@click.argument("name")
@app_option(required=True)
@db_option
@guarded
def trigger(name: str, app_ref: str, db: str | None) -> None:
    """Start one run of NAME now (its overlap rule still applies)."""
    app = load_app(app_ref)
    store = open_store(db)
    try:
        fired = Engine(store, app.supervisors, plans=app.plans).schedules.trigger(name)
    finally:
        store.close()
    if fired.started:
        click.echo(f"{name} started {fired.started[0]}")
    else:
        click.echo(f"{name}: skipped, its previous run is still going (overlap=skip)")
