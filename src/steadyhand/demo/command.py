"""`steadyhand demo`: book trips across unreliable services while workers are killed, then
audit the services' ledgers. Exit code 0 when the audit passes, 3 when it does not.

The orchestration lives in run.py and the screen in display.py, both imported only when the
demo runs, so registering this command costs the other commands nothing.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from steadyhand.core import jsoncodec
from steadyhand.demo.options import PROFILE_NAMES, DemoError, DemoOptions

EXIT_AUDIT_FAILED = 3
EXIT_INTERRUPTED = 130
_DEFAULTS = DemoOptions()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Turn SIGTERM into the same orderly stop as Ctrl-C while a run lasts, so no child
    process (service or worker) is left behind."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.option("--trips", default=_DEFAULTS.trips, show_default=True, help="How many trips.")
@click.option(
    "--rate",
    default=_DEFAULTS.rate,
    show_default=True,
    help="Trips started per second (0: all at once).",
)
@click.option("--workers", default=_DEFAULTS.workers, show_default=True, help="Worker processes.")
@click.option(
    "--concurrency",
    default=_DEFAULTS.concurrency,
    show_default=True,
    help="Calls in flight per worker.",
)
@click.option("--seed", default=_DEFAULTS.seed, show_default=True, help="Seeds faults and kills.")
@click.option(
    "--db",
    default=None,
    help="Store URL (sqlite:///file.db or postgresql://…). Default: a fresh "
    "SQLite file in the work directory, replaced on every run.",
)
@click.option(
    "--faults",
    type=click.Choice(PROFILE_NAMES),
    default=_DEFAULTS.faults,
    show_default=True,
    help="How unreliable the services are.",
)
@click.option(
    "--kill-workers/--no-kill-workers",
    default=_DEFAULTS.kill_workers,
    show_default=True,
    help="SIGKILL a random worker every few seconds and start a new one.",
)
@click.option(
    "--kill-every",
    default=_DEFAULTS.kill_every,
    show_default=True,
    help="Mean seconds between kills.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=_DEFAULTS.workdir,
    show_default=True,
    help="Where the services' ledgers, the logs and the default store go.",
)
@click.option(
    "--timeout",
    default=_DEFAULTS.timeout,
    show_default=True,
    help="Stop waiting after this many seconds and report what is left open.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only a JSON summary.")
def demo(
    trips: int,
    rate: float,
    workers: int,
    concurrency: int,
    seed: int,
    db: str | None,
    faults: str,
    kill_workers: bool,
    kill_every: float,
    workdir: Path,
    timeout: float,
    as_json: bool,
) -> None:
    """Book trips (flight, then hotel and car side by side) across three unreliable services.

    Starts the services and several workers on the embedded SQLite store (or --db), shows
    progress while it runs, and ends with a summary and an audit against the services' own
    ledgers. Exits 3, naming the trips, if the audit finds a trip half-done,
    double-booked, failed, or at odds with the services' ledgers.
    """
    try:
        options = DemoOptions(
            trips=trips,
            rate=rate,
            workers=workers,
            concurrency=concurrency,
            seed=seed,
            db=db,
            faults=faults,
            kill_workers=kill_workers,
            kill_every=kill_every,
            workdir=workdir,
            timeout=timeout,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    from steadyhand.demo.run import run_demo
    from steadyhand.demo.service_process import ServiceStartError

    with sigterm_as_ctrl_c():
        try:
            if as_json:
                result = run_demo(options)
                click.echo(jsoncodec.pretty(result.to_json()))
            else:
                from steadyhand.demo.display import LiveDisplay, print_summary

                display = LiveDisplay()
                result = run_demo(options, display)
                display.console.print()
                print_summary(result, display.console)
        except KeyboardInterrupt:
            click.echo(
                f"\ninterrupted: every process the demo started is stopped; the store is at "
                f"{options.db_url}",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
        except (DemoError, ServiceStartError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    if not result.ok:
        sys.exit(EXIT_AUDIT_FAILED)
