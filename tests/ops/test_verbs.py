"""The CLI verbs on both backends: `start --wait` (result, exit code by ending, --input from
a file or stdin), `signal` (by key or id, payload from a file, dedupe key), `watch`, and the
worker's one INFO line per attempt outcome."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.store import Store
from tests.apps.shop import app
from tests.conftest import running_worker

APP = "tests.apps.shop:app"


def cli(url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, [*args, "--db", url], input=stdin)


@pytest.fixture
def worked(store_url: str) -> Iterator[Store]:
    """The store, with a worker running the shop on it."""
    store = open_store(store_url)
    try:
        with running_worker(app, store):
            yield store
    finally:
        store.close()


def test_start_wait_prints_the_result_and_exits_by_how_it_ended(
    worked: Store, tmp_path: Path
) -> None:
    url = worked.url
    done = cli(url, "start", "order", "--input", '{"amount": 3}', "--app", APP, "--wait")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"charge": {"charged": 3}, "ship": {"shipped": True}}
    order = tmp_path / "order.json"
    order.write_text('{"amount": 4, "decline": true}')
    rolled = cli(url, "start", "order", "--input", f"@{order}", "--app", APP, "--wait")
    assert rolled.exit_code == 3, rolled.output
    assert "compensated" in rolled.stderr and "card declined" in rolled.stderr
    broken = '{"amount": 4, "undeliverable": true, "refund_broken": true}'
    failed = cli(url, "start", "order", "--input", "-", "--app", APP, "--wait", stdin=broken)
    assert failed.exit_code == 6, failed.output
    assert "failed" in failed.stderr
    waiting = cli(url, "start", "approval", "--app", APP, "--wait", "--timeout", "0.3")
    assert waiting.exit_code == 7 and "still waiting" in waiting.stderr


def test_start_refuses_unreadable_or_invalid_input_clearly(store_url: str, tmp_path: Path) -> None:
    missing = cli(store_url, "start", "order", "--input", f"@{tmp_path}/nope.json", "--app", APP)
    assert missing.exit_code == 2 and "cannot read" in missing.output
    bad = cli(store_url, "start", "order", "--input", "-", "--app", APP, stdin="{oops")
    assert bad.exit_code == 2 and "stdin is not valid JSON" in bad.output
    assert "Traceback" not in bad.output + missing.output


def test_signal_by_key_or_id_with_a_payload_and_a_dedupe_key(worked: Store, tmp_path: Path) -> None:
    url = worked.url
    client = Client(app, worked)
    first = client.start("approval", {}, key="a-1").workflow_id
    payload = tmp_path / "ok.json"
    payload.write_text('{"by": "ann"}')
    sent = cli(
        url, "signal", "approved", "--key", "a-1", "--payload", f"@{payload}", "--dedupe-key", "d-1"
    )
    assert sent.exit_code == 0 and f"{first}: approved recorded" in sent.output
    again = cli(url, "signal", "approved", "--id", first, "--dedupe-key", "d-1")
    assert again.exit_code == 0 and "already recorded" in again.output
    status = client.wait(first, timeout=30)
    assert status.state == "completed"
    events = [f for f in client.view(first).facts if f.kind == "event_received"]
    assert len(events) == 1 and events[0].data["payload"] == {"by": "ann"}
    both = cli(url, "signal", "approved", "--key", "a-1", "--id", first)
    assert both.exit_code == 2 and "exactly one of --key K or --id ID" in both.output
    unknown = cli(url, "signal", "approved", "--key", "no-such-key")
    assert unknown.exit_code == 4, unknown.output


def test_watch_follows_a_workflow_until_it_ends(worked: Store) -> None:
    client = Client(app, worked)
    started = client.start("order", {"amount": 2, "decline": True}).workflow_id
    watched = cli(worked.url, "watch", started, "--interval", "0.05")
    assert watched.exit_code == 3, watched.output
    lines = watched.stdout.splitlines()
    assert lines[0].startswith(f"{started} (order)")
    assert any("[charge#1]" in line and "card declined" in line for line in lines), lines
    assert "ended compensated" in lines[-1]
    seqs = [line for line in lines if "supervisor run" in line]
    assert len(seqs) == len(set(seqs)), "each fact is printed once"
    waiting = client.start("approval", {}).workflow_id
    stopped = cli(worked.url, "watch", waiting, "--interval", "0.05", "--timeout", "0.2")
    assert stopped.exit_code == 7 and "started" in stopped.stdout


def test_the_worker_logs_one_info_line_per_attempt_outcome(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(app, store)
    caplog.set_level(logging.INFO, logger="steadyhand.worker")
    started = client.start("order", {"amount": 1, "decline": True}).workflow_id
    with running_worker(app, store):
        assert client.wait(started, timeout=30).state == "compensated"
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "steadyhand.worker" and r.levelno == logging.INFO and started in r.getMessage()
    ]
    assert len(lines) == 1, lines  # one attempt: the refused charge (nothing to compensate)
    assert f"workflow {started} step charge action attempt 1 (agent charge)" in lines[0]
    assert "failed (permanent)" in lines[0] and "card declined" in lines[0]
    ok = client.start("order", {"amount": 1}).workflow_id
    caplog.clear()
    with running_worker(app, store):
        assert client.wait(ok, timeout=30).state == "completed"
    oks = [r.getMessage() for r in caplog.records if ok in r.getMessage()]
    assert len([m for m in oks if ": succeeded in" in m]) == 2
