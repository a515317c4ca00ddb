"""How the demo looks on a terminal: live progress while it runs, then the summary and audit.

Everything here only reads a `Snapshot` or a `DemoResult`; the run itself knows nothing of
the screen, so `--json` and the tests skip this module entirely.
"""

from __future__ import annotations

import re
import shlex
import time
from collections import Counter
from collections.abc import Iterable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from steadyhand.demo.options import DemoOptions
from steadyhand.demo.report import TripRecord
from steadyhand.demo.run import DemoResult, Snapshot

MAX_PROBLEMS_SHOWN = 10


class LiveDisplay:
    """The live view: a progress bar over finished trips, counts by state, and events."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.progress = Progress(
            TextColumn("[bold]trips"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TextColumn("[dim]{task.fields[info]}"),
            console=self.console,
            expand=True,
        )
        self.task: TaskID | None = None
        self.lines = Text()
        self.live: Live | None = None
        self.began = time.monotonic()

    def begin(self, options: DemoOptions, db_url: str) -> None:
        kills = (
            f"SIGKILL a worker every ~{options.kill_every:g} s"
            if options.kill_workers
            else "no worker kills"
        )
        arrival = "all at once" if options.rate == 0 else f"{options.rate:g} trips/s arriving"
        self.console.print(
            f"[bold]steadyhand demo[/]: booking {options.trips} trips (flight, then hotel ∥ car; "
            "cancel what took effect on failure) across three unreliable services"
        )
        self.console.print(
            f"[dim]store {db_url} · faults {options.faults} · {options.workers} workers x "
            f"{options.concurrency} · {arrival} · {kills} · seed {options.seed}[/]"
        )
        self.task = self.progress.add_task("trips", total=options.trips, info="0 started · 0.0s")
        self.live = Live(self, console=self.console, refresh_per_second=8, transient=False)
        self.live.start()
        self.began = time.monotonic()

    def note(self, message: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.began:6.1f}s[/] {message}")

    def update(self, snapshot: Snapshot) -> None:
        tally, states = snapshot.tally, snapshot.tally.states
        if self.task is not None:
            self.progress.update(
                self.task,
                completed=tally.finished,
                info=f"{snapshot.started} started · {snapshot.elapsed:.1f}s",
            )
        lines = Text()
        lines.append("completed ", "green").append(f"{states['completed']}  ")
        lines.append("compensated ", "yellow").append(f"{states['compensated']}  ")
        lines.append("failed ", "bold red").append(f"{states['failed']}  │  ")
        lines.append("compensating ", "magenta").append(f"{states['compensating']}  ")
        lines.append("running ", "cyan").append(f"{states['running']}\n")
        lines.append(
            f"attempts {tally.attempts} · retries {tally.retries} · probes {tally.probes} · "
            f"compensations {tally.compensations}\n"
            f"workers {snapshot.workers_alive} up · {snapshot.workers_killed} killed · "
            f"calls they lost {tally.lost} (found by lease expiry)",
            "dim",
        )
        self.lines = lines

    def end(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __rich__(self) -> RenderableType:
        return Group(self.progress, self.lines)


def _reason_kind(reason: str | None) -> str:
    """Fold a compensation reason into a short category, e.g. "hotels: sold out"."""
    text = reason or "no reason recorded"
    found = re.search(r"(?:PermanentError|TransientError|OutcomeUnknown): ([^;)]+)", text)
    if found:
        return found.group(1).strip()
    found = re.search(r"(gave up after \d+ attempts)", text)
    return found.group(1) if found else text[:80]


def _top(counter: Counter[str], limit: int = 4) -> str:
    return ", ".join(f"{name} ({count})" for name, count in counter.most_common(limit))


def db_arg(db_url: str) -> str:
    return shlex.quote(db_url)


def _pick(records: Iterable[TripRecord], state: str) -> TripRecord | None:
    """The trip worth explaining: of `state`, the one whose story has most recovery in it."""
    candidates = [r for r in records if r.state == state]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (r.kinds.get("attempt_lost", 0), r.recovered))


def print_summary(result: DemoResult, console: Console | None = None) -> None:
    """The table of figures, the audit with every broken trip named, and what to try next."""
    console = console or Console()
    t, states = result.tally, result.tally.states
    rate = t.trips / result.duration_s if result.duration_s > 0 else 0.0
    reasons = Counter(_reason_kind(r.reason) for r in result.records if r.state == "compensated")
    faults = Counter({k.replace("_", " "): v for k, v in result.faults_injected.items()})

    table = Table(title="summary", show_header=False, title_justify="left", box=None)
    table.add_column(justify="right", style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    table.add_row("trips", str(t.trips), f"{rate:.1f} trips/s")
    table.add_row("completed", f"[green]{states['completed']}", "flight, hotel and car booked")
    table.add_row(
        "compensated", f"[yellow]{states['compensated']}", f"rolled back: {_top(reasons)}"
    )
    table.add_row("failed", f"[bold red]{states['failed']}", "could not finish nor roll back")
    unfinished = states["running"] + states["compensating"]
    if unfinished:
        table.add_row("unfinished", f"[bold red]{unfinished}", "still open when the run ended")
    table.add_row("attempts", str(t.attempts), "booking calls made")
    table.add_row("retries", str(t.retries), "calls tried again after a failure")
    table.add_row("probes", str(t.probes), "'did my booking go through?' after an unknown outcome")
    table.add_row("compensations", str(t.compensations), "bookings cancelled while rolling back")
    table.add_row(
        "calls lost",
        str(t.lost),
        f"in flight when one of {result.workers_killed} killed workers died; found by lease expiry",
    )
    table.add_row("answers lost", str(t.uncertain + t.timed_out), "hung or cut-off calls, probed")
    table.add_row("faults injected", str(sum(faults.values())), _top(faults, 6))
    opened = {svc: kinds.get("circuit_opened", 0) for svc, kinds in result.circuits.items()}
    closed = sum(kinds.get("circuit_closed", 0) for kinds in result.circuits.values())
    table.add_row(
        "circuits opened",
        str(sum(opened.values())),
        (", ".join(f"{svc} {n}x" for svc, n in sorted(opened.items()) if n) or "none")
        + f"; closed again {closed} times after trial calls succeeded",
    )
    table.add_row("duration", f"{result.duration_s:.1f} s", "")
    console.print(table)
    console.print()
    print_audit(result, console)
    console.print()
    print_next_steps(result, console)


def print_audit(result: DemoResult, console: Console) -> None:
    title = "[bold green]audit passed" if result.ok else "[bold red]audit FAILED"
    console.print(f"{title}[/] against the services' own ledgers:")
    by_id = {r.trip.workflow_id: r for r in result.records}
    for check in result.audit.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"  {mark} {check.name}")
        for problem in check.problems[:MAX_PROBLEMS_SHOWN]:
            state = by_id[problem.workflow_id].state if problem.workflow_id in by_id else "?"
            console.print(
                f"      [red]{problem.label}[/] {problem.workflow_id} ({state}): {problem.detail}",
                highlight=False,
            )
        if len(check.problems) > MAX_PROBLEMS_SHOWN:
            console.print(f"      … and {len(check.problems) - MAX_PROBLEMS_SHOWN} more")


def print_next_steps(result: DemoResult, console: Console) -> None:
    db = db_arg(result.db_url)
    lines: list[tuple[str, str]] = []
    broken = result.audit.broken()
    if broken:
        lines.append((f"steadyhand explain {broken[0]} --db {db}", "the first trip that broke"))
    survivor = _pick(result.records, "completed")
    if survivor is not None:
        lines.append(
            (f"steadyhand explain {survivor.trip.workflow_id} --db {db}", _story(survivor))
        )
    undone = _pick(result.records, "compensated")
    if undone is not None:
        lines.append((f"steadyhand status {undone.trip.workflow_id} --db {db}", "rolled back"))
    console.print(f"The store is kept at {result.db_url}; try:")
    for command, why in lines:
        console.print(f"  [bold]{command}[/]  [dim]# {why}[/]", highlight=False, soft_wrap=True)
    workdir = result.options.workdir
    console.print(
        f"[dim]Worker logs are in {workdir / 'logs'}, the services' ledgers and logs in "
        f"{workdir / 'services'}.[/]"
    )


def _story(record: TripRecord) -> str:
    lost = record.kinds.get("attempt_lost", 0)
    probes = record.kinds.get("probe_scheduled", 0)
    if lost:
        return f"{record.trip.label}: completed although its worker was killed mid-call"
    if probes:
        return f"{record.trip.label}: completed after {probes} probe(s) of a lost answer"
    return f"{record.trip.label}: completed"
