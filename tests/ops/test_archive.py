"""Sealed archives (issue 17): ended workflows leave the store only into files that prove
they are whole, through the one guarded path, and running work is never touched."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.core.errors import NotFoundError, StoreError
from steadyhand.store import Store
from tests.apps.scripted import app
from tests.ops.conftest import run_trips


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})


def facts_count(store: Store, workflow_id: str) -> int:
    with store.snapshot() as tx:
        return len(tx.read_facts(workflow_id))


@pytest.fixture
def history(store_url: str, tmp_path: Path) -> tuple[list[str], str]:
    """Three ended trips (completed, compensated, failed) and one that is still running."""
    ledger = str(tmp_path / "ledger.db")
    ended = run_trips(
        store_url,
        ledger,
        [{}, {"car": ["permanent"]}, {"car": ["permanent"], "undo:hotel": ["transient"] * 10}],
    )
    store = open_store(store_url)
    try:
        running = Client(app, store).start("trip", {"ledger": ledger}).workflow_id  # no worker
    finally:
        store.close()
    return ended, running


def test_archive_round_trip_leaves_running_work_alone(
    store_url: str, store: Store, tmp_path: Path, history: tuple[list[str], str]
) -> None:
    ended, running = history
    before_running = facts_count(store, running)
    stories = {i: json.loads(cli("explain", i, "--json", "--db", store_url).output) for i in ended}

    dry = cli("archive", "--ended-before", "0s", "--dry-run", "--db", store_url)
    assert dry.exit_code == 0, dry.output
    assert "would archive 3 workflows" in dry.output
    assert all(facts_count(store, i) > 0 for i in ended), "a dry run changes nothing"

    out = tmp_path / "archives"
    done = cli(
        "archive", "--ended-before", "0s", "--to", str(out), "--name", "n1", "--db", store_url
    )
    assert done.exit_code == 0, done.output
    assert "archived 3 workflows" in done.output

    client = Client(app, store)
    for workflow_id in ended:
        with pytest.raises(NotFoundError):
            client.status(workflow_id)
    assert facts_count(store, running) == before_running, "a running workflow is untouched"
    assert client.status(running).state in ("running", "waiting")

    checked = cli("archive", "verify", str(out / "n1"))
    assert checked.exit_code == 0, checked.output
    for workflow_id in ended:
        told = cli("explain", workflow_id, "--json", "--archive", str(out / "n1"))
        assert told.exit_code == 0, told.output
        story = json.loads(told.output)
        for mine, theirs in zip(story["facts"], stories[workflow_id]["facts"], strict=True):
            diff = {k: (mine.get(k), theirs.get(k)) for k in theirs if mine.get(k) != theirs.get(k)}
            assert not diff, diff
        assert story["status"]["state"] == stories[workflow_id]["status"]["state"]
        assert story["verdict"] == stories[workflow_id]["verdict"]

    runs = cli("archive", "runs", "--db", store_url)
    assert "n1" in runs.output and "3 workflows" in runs.output
    again = cli("archive", "--ended-before", "0s", "--to", str(out), "--db", store_url)
    assert "nothing to archive" in again.output


def test_any_changed_byte_fails_verification_and_names_the_file(
    store_url: str, tmp_path: Path, history: tuple[list[str], str]
) -> None:
    out = tmp_path / "archives"
    assert (
        cli(
            "archive", "--ended-before", "0s", "--to", str(out), "--name", "a", "--db", store_url
        ).exit_code
        == 0
    )
    part = out / "a" / "part-0001.jsonl.gz"
    lines = gzip.decompress(part.read_bytes()).splitlines()
    record = json.loads(lines[0])
    record["facts"][-1]["kind"] = "workflow_completed"  # rewrite how it ended
    lines[0] = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    part.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines), mtime=0))

    result = cli("archive", "verify", str(out / "a"))
    assert result.exit_code == 1
    assert "part-0001.jsonl.gz" in result.output

    manifest = json.loads((out / "a" / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["name"] == part.name)
    entry["sha256"] = __import__("hashlib").sha256(part.read_bytes()).hexdigest()
    (out / "a" / "manifest.json").write_text(json.dumps(manifest))
    result = cli("archive", "verify", str(out / "a"))
    assert result.exit_code == 1, "a forged file hash still breaks the chain"
    assert "chain" in result.output


def test_history_stays_append_only_outside_an_archive_run(
    store: Store, history: tuple[list[str], str]
) -> None:
    ended, running = history
    with pytest.raises(StoreError), store.transaction() as tx:
        tx.query("DELETE FROM facts WHERE workflow_id = :id", {"id": ended[0]})
    with pytest.raises(StoreError), store.transaction() as tx:
        tx.query(
            "INSERT INTO archive_runs (id, name, directory, ended_before, workflows, facts, "
            "manifest_sha256, by, at) VALUES ('r', 'r', '/x', 0, 0, 0, '', 'me', 0)"
        )
        tx.query(
            "INSERT INTO archive_removals (workflow_id, run_id) VALUES (:id, 'r')", {"id": running}
        )


def test_bad_input_is_a_clear_error(store_url: str, tmp_path: Path) -> None:
    assert cli("archive", "--db", store_url).exit_code == 2
    result = cli("archive", "verify", str(tmp_path))
    assert result.exit_code == 1
    assert "no manifest.json" in result.output
    result = cli("archive", "--ended-before", "soon", "--to", str(tmp_path), "--db", store_url)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
