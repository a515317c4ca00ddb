"""Operator settings read from the environment (kept out of `core`, which reads nothing)."""

from __future__ import annotations

import os

from steadyhand.core.stuck import STUCK_AFTER_ENV, StuckRule


def stuck_rule(after: float | None = None) -> StuckRule:
    """The stuck rule: an explicit value, else $STEADYHAND_STUCK_AFTER, else 300 s."""
    return StuckRule.parse(after, os.environ.get(STUCK_AFTER_ENV))
