"""Why workflows ended badly, grouped: "12 rolled back: car: refused 8, hotel: sold out 4",
for the dashboard's overview. Reads the recent terminal facts through the `facts_terminal`
index (bounded by the window and a sample size), and groups their reasons after taking out
what differs between workflows (ids, numbers, the wording around the cause)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from steadyhand.core import jsoncodec
from steadyhand.core.facts import WORKFLOW_COMPENSATED, WORKFLOW_FAILED
from steadyhand.core.redact import redact
from steadyhand.store.base import Store
from steadyhand.store.reporting import report

SAMPLE = 5000  # most recent endings read per overview
_WRAPPER = re.compile(r"^rolled back \((.*)\)$")
_ERROR_TYPE = re.compile(r"\b[A-Z]\w*(?:Error|Exception): ")
_LONG_ID = re.compile(r"\b[0-9a-f]{12,}\b")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_STEP = re.compile(r"^step (\S+) [a-z ]*failure: ")
MAX_LABEL = 90


@dataclass(frozen=True)
class EndingGroup:
    """How many workflows ended `state` in the window, and their commonest reasons."""

    state: str  # compensated or failed
    total: int
    reasons: list[tuple[str, int]]  # (reason, count), commonest first
    other: int  # the rest, in rarer reasons


def reason_label(reason: str) -> str:
    """A reason with what differs between workflows taken out, short enough to group by."""
    text = redact(reason).strip()  # shown to every dashboard user: no secrets
    wrapped = _WRAPPER.match(text)
    if wrapped:
        text = wrapped.group(1)
    text = _ERROR_TYPE.sub("", text)
    step = _STEP.match(text)
    if step:
        rest = text[step.end() :]
        text = rest if rest.startswith(f"{step.group(1)}:") else f"{step.group(1)}: {rest}"
    elif " (" in text:
        text = text.split(" (", 1)[0]
    text = _LONG_ID.sub("…", text)
    text = _NUMBER.sub("N", text)
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def group_endings(store: Store, since: float, top: int = 5) -> list[EndingGroup]:
    """Rolled-back and failed workflows since `since`, each with its top reasons."""
    with store.snapshot() as tx:
        rows = report(tx, "ending_reasons", {"since": since, "limit": SAMPLE})
    counts: dict[str, Counter[str]] = {WORKFLOW_COMPENSATED: Counter(), WORKFLOW_FAILED: Counter()}
    for kind, data in rows:
        reason = str((jsoncodec.loads(data) or {}).get("reason") or "no reason recorded")
        counts[kind][reason_label(reason)] += 1
    groups = []
    for kind, state in ((WORKFLOW_COMPENSATED, "compensated"), (WORKFLOW_FAILED, "failed")):
        total = sum(counts[kind].values())
        if not total:
            continue
        common = counts[kind].most_common(top)
        groups.append(EndingGroup(state, total, common, total - sum(n for _, n in common)))
    return groups
