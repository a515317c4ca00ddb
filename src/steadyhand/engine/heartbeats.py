"""What a call's task carries about heartbeats: its step's `heartbeat_timeout`, and the
details the latest earlier attempt (of the same phase of the same step) last sent, read
from the outcome facts already in hand when the call is scheduled (no extra query)."""

from __future__ import annotations

from typing import Any

from steadyhand.core.decisions import CallAgent
from steadyhand.core.facts import OUTCOMES, PROBE, call_kind
from steadyhand.core.view import WorkflowView


def heartbeat_payload(view: WorkflowView, command: CallAgent) -> dict[str, Any]:
    """`heartbeat_timeout` and `last_heartbeat` for the call's task payload (when any)."""
    if command.phase == PROBE:
        return {}
    payload: dict[str, Any] = {}
    beat = command.heartbeat_timeout
    if beat is None:  # a hand-written supervisor's call: the plan's step may still say
        spec = next((s for s in view.plan.steps if s.name == command.step), None)
        beat = spec.heartbeat_timeout if spec is not None else None
    if beat is not None:
        payload["heartbeat_timeout"] = beat
    if command.attempt <= 1:
        return payload  # no earlier attempt of this phase to learn from
    kinds = {call_kind(command.phase, suffix) for suffix in OUTCOMES}
    for fact in reversed(view.facts):
        if fact.step == command.step and fact.kind in kinds and fact.get("heartbeat") is not None:
            payload["last_heartbeat"] = fact.get("heartbeat")
            break
    return payload
