"""Bulk operator actions: cancel or retry every workflow a listing selects, in paced waves,
each through the same per-workflow action (decided under that workflow's lock) and all
sharing one batch id, kept in every operator fact they write.

The selection is read first (the same index-driven pages `steadyhand list` reads), so a
dry run and the real run see the same workflows; the waves are paced so that a thousand
cancels do not flood the workers' queue at once.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from steadyhand.core.actions import ALREADY, DONE, ENDED, NOT_APPLICABLE, ActionStatus
from steadyhand.core.errors import InputError, NotFoundError
from steadyhand.core.stuck import StuckRule
from steadyhand.define.client import Client
from steadyhand.ops.reports import MAX_PAGE, Listing, Row, list_workflows

ACTIONS = ("cancel", "retry")
DEFAULT_RATE = "50/s"
MAX_WAVE = 100  # workflows acted on between two looks at the pace
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smh]))?\s*$")
_PER = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> float:
    """`50/s`, `600/m`, `50` -> workflows per second (more than 0)."""
    match = _RATE.match(text.lower())
    value = float(match.group(1)) / _PER[match.group(2)] if match else 0.0
    if value <= 0:
        raise InputError(f"--rate {text!r}: write how many per second or minute, e.g. 50/s, 600/m")
    return value


def new_batch_id() -> str:
    """Time-ordered, so batches sort by when they ran."""
    return f"batch-{int(time.time() * 1000):012x}{secrets.token_hex(4)}"


def select(client: Client, listing: Listing, now: float, rule: StuckRule) -> list[Row]:
    """Every workflow `listing` selects (all pages), newest first."""
    rows: list[Row] = []
    page_listing = replace(listing, limit=MAX_PAGE, cursor=None)
    while True:
        page = list_workflows(client.store, page_listing, now, rule)
        rows += page.rows
        if page.next_cursor is None:
            return rows
        page_listing = replace(page_listing, cursor=page.next_cursor)


@dataclass
class BulkResult:
    """What a bulk action did: one answer per workflow and the counts by result."""

    batch: str
    action: str
    answers: list[ActionStatus] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(a.result for a in self.answers)
        return {r: found.get(r, 0) for r in (DONE, ALREADY, ENDED, NOT_APPLICABLE)}

    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.action} {self.batch}: {c[DONE]} done, {c[ALREADY]} already, "
            f"{c[ENDED]} ended, {c[NOT_APPLICABLE]} not applicable "
            f"(of {len(self.answers)} selected)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "action": self.action,
            "counts": self.counts,
            "workflows": [a.to_json() for a in self.answers],
        }


@dataclass
class Pace:
    """At most `rate` workflows per second, acted on in waves of up to `MAX_WAVE`: after a
    wave of n, wait until n / rate seconds have passed since it began."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @property
    def wave(self) -> int:
        return max(1, min(MAX_WAVE, int(self.rate)))

    def waves(self, ids: list[str]) -> Iterable[list[str]]:
        for i in range(0, len(ids), self.wave):
            began = self.clock()
            chunk = ids[i : i + self.wave]
            yield chunk
            if i + self.wave < len(ids):
                self.sleep(max(0.0, began + len(chunk) / self.rate - self.clock()))


def act(
    client: Client,
    action: str,
    ids: list[str],
    reason: str,
    pace: Pace,
    batch: str | None = None,
    by: str | None = None,
    on_answer: Callable[[ActionStatus], None] | None = None,
) -> BulkResult:
    """Cancel or retry each of `ids` in paced waves, all under one batch id."""
    if action not in ACTIONS:
        raise InputError(f"unknown bulk action {action!r}; choose cancel or retry")
    result = BulkResult(batch or new_batch_id(), action)
    for wave in pace.waves(ids):
        for workflow_id in wave:
            answer = _one(client, action, workflow_id, reason, by, result.batch)
            result.answers.append(answer)
            if on_answer is not None:
                on_answer(answer)
    return result


def _one(
    client: Client, action: str, workflow_id: str, reason: str, by: str | None, batch: str
) -> ActionStatus:
    try:
        if action == "cancel":
            return client.cancel(workflow_id, reason, by, batch=batch)
        return client.retry(workflow_id, reason, by, batch=batch)
    except NotFoundError as exc:  # archived since it was selected
        return ActionStatus(workflow_id, action, NOT_APPLICABLE, "gone", str(exc))
    except InputError as exc:  # a retry of a workflow that is no longer failed
        state = client.status(workflow_id).state
        return ActionStatus(workflow_id, action, NOT_APPLICABLE, state, str(exc))
