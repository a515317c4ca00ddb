"""The one definition of a *stuck* workflow, used by `list`, `stats`, the dashboard and metrics.

A workflow is stuck when it has not ended and is not progressing: nothing has been recorded
for longer than the threshold and no wake-up is planned, or one of its tasks is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass

from steadyhand.core.errors import InputError

DEFAULT_STUCK_AFTER = 300.0  # seconds; longer than any default backoff (60 s) or timeout (30 s)
STUCK_AFTER_ENV = "STEADYHAND_STUCK_AFTER"

# A workflow is stuck (the SQL is `store.reporting.STUCK`) when it has not ended and ANY of:
#   silent:    its last fact is older than the threshold and no wake-up is planned later
#              (a planned wait is a plan, not a stall; a call still running for longer than
#              the threshold counts, since every step's timeout should be shorter than that);
#   overdue:   a task has been due for longer than the threshold and no worker took it
#              (no worker is running, or they are all saturated);
#   abandoned: a lease expired longer than the threshold ago and no watchdog recovered it.


@dataclass(frozen=True)
class StuckRule:
    """How long a workflow may go without progress before it is reported stuck."""

    after: float = DEFAULT_STUCK_AFTER

    def __post_init__(self) -> None:
        if self.after <= 0:
            raise InputError(f"the stuck threshold must be positive seconds, not {self.after}")

    @classmethod
    def parse(cls, after: float | None, configured: str | None) -> StuckRule:
        """The rule from an explicit value, else the configured text (the environment's
        $STEADYHAND_STUCK_AFTER, read by the caller: see `ops.settings`), else 300 s."""
        if after is not None:
            return cls(after)
        if not configured:
            return cls()
        try:
            return cls(float(configured))
        except ValueError:
            raise InputError(
                f"${STUCK_AFTER_ENV}={configured!r} is not a number of seconds"
            ) from None

    def params(self, now: float) -> dict[str, float]:
        """The SQL parameters of the stuck condition at `now`."""
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
