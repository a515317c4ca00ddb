"""Which worker kills land mid-gather: the worker killed holds the lease of a call of the
trip's hotel or car (its `wf.gather`) while the trip is still open.

The trip books hotel and car only inside the gather (their compensations are another kind of
call), so a held hotel or car booking or probe means the gather has not settled yet.

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

    Counts the booking and probe calls of the gathered steps of every open trip; the pid is
    the second field of the worker id (host:pid:random).
    """
    held: Counter[int] = Counter()
    with tracker.store.snapshot() as tx:
        for record in tracker.records.values():
            if record.done:
                continue
            tasks = tx.workflow_tasks(record.trip.workflow_id)
            for task in tasks:
                if task.kind not in ("action", "probe"):
                    continue
                owner = (task.lease_owner or "").split(":")
                if task.step in GATHERED and len(owner) == 3 and owner[1].isdigit():
                    held[int(owner[1])] += 1
    return held
