"""Listing and searching workflows from code, with the filters the CLI's `list` has: the
one place that turns keyword arguments (state, name, key, id prefix, service, input values,
a start time, a page) into a `Listing` and reads one page of it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from steadyhand.core.errors import InputError
from steadyhand.core.stuck import StuckRule
from steadyhand.ops.filters import check_path
from steadyhand.ops.reports import FILTERS, Listing, Page, list_workflows
from steadyhand.ops.settings import stuck_rule
from steadyhand.ops.timetext import parse_since
from steadyhand.store.base import Store

Since = float | datetime | str | None


def make_listing(
    *,
    state: str | None = None,
    name: str | None = None,
    key: str | None = None,
    id_prefix: str | None = None,
    service: str | None = None,
    input: Mapping[str, Any] | None = None,
    since: Since = None,
    limit: int = 50,
    cursor: str | None = None,
    now: float | None = None,
) -> Listing:
    """A `Listing`, checked: `since` is a Unix time, an aware datetime, or text such as
    "2h" or an ISO time; `input` maps dotted keys to the JSON values they must hold."""
    if state is not None and state not in FILTERS:
        raise InputError(f"unknown state {state!r}; choose one of {', '.join(FILTERS)}")
    if not isinstance(limit, int) or limit < 1:
        raise InputError("limit must be a positive whole number (at most 500 rows are returned)")
    at = time.time() if now is None else now
    if isinstance(since, str):
        since_at: float | None = parse_since(since, at)
    elif isinstance(since, datetime):
        if since.tzinfo is None:
            raise InputError("since: pass a timezone-aware datetime (or a Unix time)")
        since_at = since.timestamp()
    else:
        since_at = None if since is None else float(since)
    pairs = tuple((k, v) for k, v in (input or {}).items())
    for path, _ in pairs:
        check_path(path)
    return Listing(
        state=state,
        name=name,
        since=since_at,
        limit=limit,
        cursor=cursor,
        key=key,
        id_prefix=id_prefix,
        service=service,
        input=pairs,
    )


def search(store: Store, listing: Listing, rule: StuckRule | None = None) -> Page:
    """One page of workflows matching `listing`, newest first (ended ones by when they
    ended); pass `page.next_cursor` back as `cursor` for the next page."""
    return list_workflows(store, listing, time.time(), rule or stuck_rule())
