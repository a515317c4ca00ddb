"""A worker started while its database restarts waits for it instead of exiting."""

from __future__ import annotations

import pytest

from steadyhand import StoreUnavailable
from steadyhand.cli import options as cli


def test_opening_the_store_is_retried_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[str | None] = []
    sleeps: list[float] = []
    sentinel = object()

    def flaky_open(db: str | None) -> object:
        attempts.append(db)
        if len(attempts) < 4:
            raise StoreUnavailable("terminating connection due to administrator command")
        return sentinel

    monkeypatch.setattr(cli, "open_store", flaky_open)
    monkeypatch.setattr("steadyhand.cli.options.time.sleep", sleeps.append)
    assert cli.open_store_patiently("postgresql://x/y", max_delay=1.0) is sentinel
    assert len(attempts) == 4
    assert sleeps == [0.5, 1.0, 1.0], "backoff doubles up to its cap"
