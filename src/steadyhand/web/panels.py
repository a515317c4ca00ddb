"""What the overview adds to the store's figures: endings grouped by reason and the workers
panel; and the search box (an id, an id prefix, or an idempotency key)."""

from __future__ import annotations

import dataclasses
from typing import Any

from steadyhand.core.stuck import StuckRule
from steadyhand.ops.endings import group_endings
from steadyhand.ops.reports import Listing, Page, list_workflows
from steadyhand.runtime.presence import recent_workers
from steadyhand.store.base import Store

SILENT_AFTER = 60.0  # a worker not heard from for this long is shown as gone
WORKERS_SHOWN_SINCE = 3600.0  # workers heard from within the last hour are listed


def panels(store: Store, now: float, window: float) -> dict[str, Any]:
    """The overview's endings-by-reason and workers panels."""
    workers = recent_workers(store, now, now - WORKERS_SHOWN_SINCE)
    return {
        "endings": group_endings(store, now - window),
        "workers": workers,
        "alive": {w.id for w in workers if w.alive(now, SILENT_AFTER)},
    }


def search(store: Store, query: str, listing: Listing, now: float, rule: StuckRule) -> Page:
    """Workflows whose idempotency key is `query`, else whose id starts with it (within
    the listing's other filters)."""
    by_key = list_workflows(store, dataclasses.replace(listing, key=query), now, rule)
    if by_key.rows:
        return by_key
    return list_workflows(store, dataclasses.replace(listing, id_prefix=query), now, rule)
