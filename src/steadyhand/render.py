"""How workflows look on a terminal: status panels and the explain timeline (rich)."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from .facts import SUPERVISOR_RAN, Fact, WorkflowFacts
from .status import Status

STATE_STYLE = {
    "completed": "green",
    "compensated": "yellow",
    "failed": "bold red",
    "compensating": "magenta",
    "running": "cyan",
    "waiting": "blue",
}


def when(at: float | None) -> str:
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def print_status(status: Status, console: Console | None = None) -> None:
    console = console or Console()
    table = Table.grid(padding=(0, 2))
    style = STATE_STYLE.get(status.state, "")
    table.add_row("workflow", f"{status.id} ({status.name})")
    table.add_row("state", f"[{style}]{status.state}[/]")
    if status.step:
        table.add_row("current", f"{status.step} · {status.phase} · attempt {status.attempt}")
    table.add_row("started", when(status.created_at))
    table.add_row("last fact", when(status.updated_at))
    if status.next_check_at:
        table.add_row("next check", when(status.next_check_at))
    if status.result is not None:
        table.add_row("result", json.dumps(status.result, default=str)[:500])
    if status.reason:
        table.add_row("reason", status.reason)
    console.print(table)


def _fact_summary(fact: Fact) -> str:
    data = dict(fact.data or {})
    if fact.kind == SUPERVISOR_RAN:
        decided = "; ".join(data.get("decided", []))
        return f"saw {data.get('saw')}\n→ {decided}\nwhy: {data.get('why')}"
    for key in ("reason", "error", "answer"):
        if key in data:
            return f"{key}: {data[key]}"
    if "result" in data:
        return f"result: {json.dumps(data['result'], default=str)[:200]}"
    if "agent" in data:
        return f"agent {data['agent']} (timeout {data.get('timeout')}s)"
    return ""


def print_explain(view: WorkflowFacts, status: Status, console: Console | None = None) -> None:
    console = console or Console()
    print_status(status, console)
    table = Table(title="timeline", show_lines=False, expand=True)
    table.add_column("#", justify="right", style="dim")
    table.add_column("time")
    table.add_column("fact")
    table.add_column("step")
    table.add_column("details", ratio=1)
    start = view.created_at
    for fact in view.facts:
        step = f"{fact.step}#{fact.attempt}" if fact.attempt else (fact.step or "")
        style = "bold" if fact.kind == SUPERVISOR_RAN else ""
        table.add_row(
            str(fact.seq),
            f"+{fact.at - start:.3f}s",
            f"[{style}]{fact.kind}[/]" if style else fact.kind,
            step,
            _fact_summary(fact),
        )
    console.print(table)


def facts_json(view: WorkflowFacts) -> dict[str, Any]:
    return {
        "id": view.workflow_id,
        "name": view.name,
        "input": view.input,
        "state": view.state,
        "facts": [
            {
                "seq": f.seq,
                "kind": f.kind,
                "at": f.at,
                "step": f.step,
                "attempt": f.attempt,
                "data": f.data,
            }
            for f in view.facts
        ],
    }
