"""How workflows look on a terminal (rich): status panels, lists, stats and the explain story.

Only presentation lives here; what to show comes from `status`, `reports`, `stats` and
`story`, which the dashboard shares.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from steadyhand.core import jsoncodec
from steadyhand.core.redact import redact
from steadyhand.core.status import Status
from steadyhand.core.stuck import ago
from steadyhand.core.view import WorkflowView
from steadyhand.ops.reports import Row
from steadyhand.ops.stats import Stats
from steadyhand.ops.story import Story, short
from steadyhand.ops.timetext import STATE_STYLE, when

TONE_STYLE = {
    "good": "green",
    "bad": "bold red",
    "warn": "yellow",
    "decision": "bold",
    "operator": "magenta",
}


def state_text(state: str, stuck: str | None = None) -> str:
    text = f"[{STATE_STYLE.get(state, '')}]{state}[/]"
    return text + " [bold red](stuck)[/]" if stuck else text


def print_status(
    status: Status,
    console: Console | None = None,
    stuck: str | None = None,
    doing: str | None = None,
) -> None:
    console = console or Console()
    table = Table.grid(padding=(0, 2))
    table.add_row("workflow", f"{status.id} ({status.name})")
    table.add_row("state", state_text(status.state, stuck))
    if stuck:
        table.add_row("stuck", Text(stuck, style="red"))
    if status.step:
        table.add_row("current", f"{status.step} · {status.phase} · attempt {status.attempt}")
    if doing:  # a code-first workflow: everything open, side by side (∥ marks a group)
        table.add_row("in progress", Text(doing))
    table.add_row("started", when(status.created_at))
    since = ago(time.time() - status.updated_at)
    table.add_row("last fact", f"{when(status.updated_at)} ({since} ago)")
    if status.next_check_at:
        table.add_row("next check", when(status.next_check_at))
    if status.result is not None:
        table.add_row("result", Text(short(status.result, 500)))
    if status.reason:
        table.add_row("reason", Text(redact(status.reason)))
    table.add_row("facts", str(status.facts))
    console.print(table)


def print_explain(story: Story, console: Console | None = None) -> None:
    """The story: status, the plan step by step, the timeline, and the verdict."""
    console = console or Console()
    print_status(story.status, console, story.stuck)
    if story.trace_id:
        console.print(
            f"trace {story.trace_id}" + (f"  {story.trace_url}" if story.trace_url else "")
        )
    if story.plan:
        plan = Table(title="plan", title_justify="left", expand=False)
        plan.add_column("step")
        plan.add_column("action")
        plan.add_column("attempts", justify="right")
        plan.add_column("compensation")
        code_first = any(line.detail or line.kind != "step" for line in story.plan)
        if code_first:  # steps as discovered: side-by-side groups, agents, deadlines
            plan.add_column("side by side")
            plan.add_column("detail")
        for line in story.plan:
            undo = "-" if line.compensation is None else line.compensation
            if line.undo_attempts:
                undo += f" ({line.undo_attempts})"
            cells: list[str | Text] = [
                line.name if line.kind == "step" else f"{line.kind} {line.name}",
                Text(line.action, style=TONE_STYLE.get(line.tone, "")),
                str(line.attempts or "-"),
                undo,
            ]
            if code_first:
                cells += [f"∥ {line.group}" if line.group else "", line.detail]
            plan.add_row(*cells)
        console.print(plan)
    timeline = Table(title="timeline", title_justify="left", expand=True, show_lines=False)
    timeline.add_column("#", justify="right", style="dim")
    timeline.add_column("+time", justify="right")
    timeline.add_column("what happened", ratio=1)
    for entry in story.entries:
        style = TONE_STYLE.get(entry.tone, "")
        text = Text(entry.text, style=style)
        if entry.why is not None:
            text.append(f"\n  saw: {entry.saw}", style="dim")
            text.append(f"\n  why: {entry.why}", style="")
        timeline.add_row(str(entry.seq), f"+{entry.offset:.3f}s", text)
    console.print(timeline)
    if story.next_after is not None:
        console.print(
            f"{len(story.entries)} of {story.total} facts shown; the next page: "
            f"--after {story.next_after} (or --all)",
            style="dim",
        )
    verdict_style = "bold red" if story.stuck or story.status.state == "failed" else "bold"
    console.print(Text(story.verdict, style=verdict_style))


def story_json(story: Story, view: WorkflowView) -> dict[str, Any]:
    """The story for scripts: status, plan, every fact with its sentence, and the verdict."""
    by_seq = {f.seq: f for f in view.facts}
    return {
        "status": story.status.to_json(),
        "stuck": story.stuck,
        "verdict": story.verdict,
        "rounds": story.rounds,
        "trace_id": story.trace_id,
        "input": view.input,
        "plan": [asdict(line) for line in story.plan],
        "facts": [
            {
                **asdict(e),
                "slot": by_seq[e.seq].slot,
                "data": by_seq[e.seq].data,
                "decided": list(e.decided),
            }
            for e in story.entries
        ],
        "total_facts": story.total,
        "next_after": story.next_after,
    }


def print_list(
    rows: list[Row], next_cursor: str | None, console: Console | None = None, wide: bool = False
) -> None:
    """One line per workflow. At the terminal's width the reason (and, below 120 columns,
    the step and start time) are cut short with an ellipsis; `wide` prints every column
    whole, however long the line."""
    console = console or Console()
    if wide:
        console = Console(width=100_000, file=console.file, no_color=console.no_color)
    roomy = wide or console.width >= 120
    table = Table(box=None, expand=not wide, pad_edge=False, show_edge=False)
    cut: dict[str, object] = {} if wide else {"no_wrap": True, "overflow": "ellipsis"}
    table.add_column("id", no_wrap=True, min_width=28)
    table.add_column("state", no_wrap=True)
    table.add_column("name", **cut, max_width=None if wide else 16)  # type: ignore[arg-type]
    if roomy:
        table.add_column("step · attempt", **cut)  # type: ignore[arg-type]
        table.add_column("started", no_wrap=True)
    table.add_column("last fact", no_wrap=True)
    table.add_column("reason", ratio=None if wide else 1, **cut)  # type: ignore[arg-type]
    now = time.time()
    for row in rows:
        current = f"{row.step} · {row.phase} {row.attempt}" if row.step else "-"
        cells: list[str | Text] = [row.id, state_text(row.state, row.stuck), Text(row.name)]
        if roomy:
            cells += [current, when(row.created_at)]
        reason = redact(row.stuck or row.reason or "").replace("\n", " ")
        cells += [f"{ago(now - row.updated_at)} ago", Text(reason)]
        table.add_row(*cells)
    console.print(table, soft_wrap=wide)
    if not rows:
        console.print("no workflows match")
    if next_cursor:
        console.print(f"[dim]more: --cursor '{next_cursor}'[/]")


def print_stats(stats: Stats, console: Console | None = None) -> None:
    console = console or Console()
    window = ago(stats.window)
    states = Table(title="workflows", title_justify="left")
    states.add_column("state")
    states.add_column("count", justify="right")
    for state, n in stats.states.items():
        label = state if state in ("running", "waiting", "compensating") else f"{state} ({window})"
        states.add_row(Text(label, style=STATE_STYLE[state]), str(n))
    stuck_label = f"stuck (no progress > {ago(stats.stuck_after)})"
    states.add_row(Text(stuck_label, style=STATE_STYLE["stuck"]), str(stats.stuck))
    console.print(states)
    per_min = stats.ended / (stats.window / 60) if stats.window else 0.0
    console.print(
        f"throughput ({window}): {stats.started} started, {stats.ended} ended "
        f"({per_min:.2f}/min) {sparkline(stats.throughput)}"
    )
    console.print(
        f"queue: {stats.queue_depth} due now "
        f"({', '.join(f'{k} {v}' for k, v in sorted(stats.queue.items())) or 'none'}), "
        f"lag {stats.queue_lag:.2f}s; {stats.leased} in flight, {stats.scheduled_later} later, "
        f"{stats.expired_leases} expired leases"
    )
    if stats.decision_ms:
        ms = stats.decision_ms
        console.print(
            f"supervisor decisions ({window}, last {stats.decisions}): p50 {ms['p50']:.2f} ms, "
            f"p95 {ms['p95']:.2f} ms, max {ms['max']:.2f} ms; "
            f"{stats.compensations_began} rollbacks began"
        )
    outcomes = sorted({o for a in stats.attempts for o in a.outcomes})
    calls = Table(title=f"calls by step and outcome ({window})", title_justify="left")
    calls.add_column("phase")
    calls.add_column("step")
    for outcome in outcomes:
        calls.add_column(outcome.replace("_", " "), justify="right")
    calls.add_column("retries", justify="right")
    for row in stats.attempts:
        calls.add_row(
            row.phase,
            row.step,
            *[str(row.outcomes.get(o, 0)) for o in outcomes],
            str(row.retries),
        )
    if stats.attempts:
        console.print(calls)
    if stats.services:
        print_services(stats, console)


CIRCUIT_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red", "held": "bold red"}


def print_services(stats: Stats, console: Console) -> None:
    """Per remote service: in flight, recent rate and failure ratio, limits, circuit."""
    table = Table(title="remote services (last minute)", title_justify="left")
    for name in ("service", "in flight", "calls/s", "failing", "limits", "circuit"):
        table.add_column(name, justify="right" if name in ("in flight", "calls/s") else "left")
    for svc in stats.services:
        limits = ", ".join(
            part
            for part in (
                f"≤{svc.max_in_flight} at once" if svc.max_in_flight else "",
                f"≤{svc.rate_limit:g}/s" if svc.rate_limit else "",
            )
            if part
        )
        circuit = svc.circuit.replace("_", "-")
        if svc.circuit != "closed" and svc.circuit_since is not None:
            circuit += f" since {when(svc.circuit_since)}"
            if svc.reason:
                circuit += f" ({svc.reason})"
        table.add_row(
            svc.service,
            str(svc.in_flight),
            f"{svc.rate:.2f}",
            f"{svc.failure_ratio:.0%} of {svc.calls}",
            limits or "none",
            Text(circuit, style=CIRCUIT_STYLE.get(svc.circuit, "")),
        )
    console.print(table)


def sparkline(values: list[int]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    top = max(values, default=0)
    if not top:
        return ""
    return "".join(bars[min(7, int(v / top * 7.999))] if v else " " for v in values)


def dumps(value: Any) -> str:
    return jsoncodec.pretty(value)
