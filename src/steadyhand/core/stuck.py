"""The one definition of a *stuck* workflow, used by `list`, `stats`, the dashboard and metrics.

A workflow is stuck when it has not ended and is not progressing: nothing has been recorded
for longer than the threshold and no wake-up is planned, or one of its tasks is overdue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from steadyhand.core.errors import InputError

DEFAULT_STUCK_AFTER = 300.0  # seconds; longer than any default backoff (60 s) or timeout (30 s)
STUCK_AFTER_ENV = "STEADYHAND_STUCK_AFTER"

# A workflow (its id in the column `{wid}`) is stuck when ANY of these holds (it must also be
# not ended; callers pick candidates from `open_workflows` and exclude ended ones):
#   silent:    its last fact is older than the threshold and no wake-up is planned later
#              (a planned wait is a plan, not a stall; a call still running for longer than
#              the threshold counts, since every step's timeout should be shorter than that);
#   overdue:   a task has been due for longer than the threshold and no worker took it
#              (no worker is running, or they are all saturated);
#   abandoned: a lease expired longer than the threshold ago and no watchdog recovered it.
STUCK_SQL = """(
    ((SELECT sf.at FROM facts sf WHERE sf.workflow_id = {wid} ORDER BY sf.seq DESC LIMIT 1)
        < :stuck_before
     AND NOT EXISTS (SELECT 1 FROM tasks st WHERE st.workflow_id = {wid}
                     AND st.lease_owner IS NULL AND st.due_at > :now))
    OR EXISTS (SELECT 1 FROM tasks st WHERE st.workflow_id = {wid}
               AND st.lease_owner IS NULL AND st.due_at < :stuck_before)
    OR EXISTS (SELECT 1 FROM tasks st WHERE st.workflow_id = {wid}
               AND st.lease_owner IS NOT NULL AND st.lease_expires_at < :stuck_before)
)"""

# The evidence behind the verdict, one row per stuck workflow, to say *why* in words.
STUCK_EVIDENCE_SQL = """
    SELECT w.id,
           (SELECT sf.at FROM facts sf WHERE sf.workflow_id = w.id ORDER BY sf.seq DESC LIMIT 1),
           (SELECT MIN(st.due_at) FROM tasks st WHERE st.workflow_id = w.id
               AND st.lease_owner IS NULL AND st.due_at < :stuck_before),
           (SELECT MIN(st.lease_expires_at) FROM tasks st WHERE st.workflow_id = w.id
               AND st.lease_owner IS NOT NULL AND st.lease_expires_at < :stuck_before),
           (SELECT COUNT(*) FROM tasks st WHERE st.workflow_id = w.id
               AND st.lease_owner IS NOT NULL AND st.lease_expires_at >= :now)
    FROM workflows w WHERE w.id IN ({ids}) AND {stuck}
"""


def stuck_predicate(workflow_id_column: str) -> str:
    """The stuck condition as SQL for the workflow whose id is in `workflow_id_column`."""
    return STUCK_SQL.format(wid=workflow_id_column)


@dataclass(frozen=True)
class StuckRule:
    """How long a workflow may go without progress before it is reported stuck."""

    after: float = DEFAULT_STUCK_AFTER

    def __post_init__(self) -> None:
        if self.after <= 0:
            raise InputError(f"the stuck threshold must be positive seconds, not {self.after}")

    @classmethod
    def from_env(cls, after: float | None = None) -> StuckRule:
        """The rule from an explicit value, else $STEADYHAND_STUCK_AFTER, else 300 s."""
        if after is not None:
            return cls(after)
        raw = os.environ.get(STUCK_AFTER_ENV)
        if not raw:
            return cls()
        try:
            return cls(float(raw))
        except ValueError:
            raise InputError(f"${STUCK_AFTER_ENV}={raw!r} is not a number of seconds") from None

    def params(self, now: float) -> dict[str, float]:
        """The SQL parameters of `STUCK_SQL` at `now`."""
        return {"now": now, "stuck_before": now - self.after}


def why_stuck(
    now: float,
    last_fact_at: float | None,
    overdue_since: float | None,
    lease_expired_at: float | None,
    live_leases: int,
) -> str:
    """Say in words which part of the definition a stuck workflow meets (from the evidence)."""
    reasons = []
    if overdue_since is not None:
        reasons.append(
            f"a task has been due for {ago(now - overdue_since)} and no worker took it "
            "(are workers running and keeping up?)"
        )
    if lease_expired_at is not None:
        reasons.append(
            f"a lease expired {ago(now - lease_expired_at)} ago and nobody recovered it "
            "(is any worker's watchdog running?)"
        )
    if not reasons and last_fact_at is not None:
        silent = f"no fact for {ago(now - last_fact_at)} and no wake-up planned"
        if live_leases:
            silent += "; a call is still running (is its timeout longer than the threshold?)"
        reasons.append(silent)
    return "; ".join(reasons) or "not progressing"


def ago(seconds: float) -> str:
    """A short duration for people: 0.5s, 45s, 12m, 3h05m, 1h, 2d04h."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if hours else f"{days}d"
