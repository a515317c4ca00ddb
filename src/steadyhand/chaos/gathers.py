"""Which worker kills land mid-gather: the trip's hotel and car (its `wf.gather`) both have
a call in the queue, and the worker killed holds the lease of one of them.

Read from the queue just before each kill, the way the demo reads what a kill interrupts
(`Tracker.calls_held`), so the chaos report can say how many kills struck a code-first
workflow between its parallel branches, not merely during the run.
"""

from __future__ import annotations

from collections import Counter

from steadyhand.demo.report import Tracker

GATHERED = frozenset({"hotel", "car"})
"""The steps the demo's trip runs side by side."""


def gather_calls_held(tracker: Tracker) -> Counter[int]:
    """Calls of a gather in flight, by the pid of the worker holding their lease.

    A trip counts only while both branches have a call queued or running (so a kill there
    strikes one branch while its sibling is still open); the pid is the second field of the
    worker id (host:pid:random).
    """
    held: Counter[int] = Counter()
    with tracker.store.snapshot() as tx:
        for record in tracker.records.values():
            if record.done:
                continue
            tasks = tx.workflow_tasks(record.trip.workflow_id)
            calls = [t for t in tasks if t.kind in ("action", "probe")]
            if not {t.step for t in calls} >= GATHERED:
                continue
            for task in calls:
                owner = (task.lease_owner or "").split(":")
                if task.step in GATHERED and len(owner) == 3 and owner[1].isdigit():
                    held[int(owner[1])] += 1
    return held
