"""A worker in another process is woken by a start, not found by its poll.

PostgreSQL wakes workers with NOTIFY; SQLite, which has no such thing, through the store's
wake-up channel (`steadyhand.store.wakeup`). Both are checked the same way: the worker
polls once a minute and sweeps once a minute, so a workflow that finishes within the
test's wait was started by a wake-up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from steadyhand import Client
from steadyhand.store import Store
from steadyhand.store.wakeup import SUFFIX, WakeChannel, channel_dir
from tests.apps.scripted import app
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
STEADYHAND = str(Path(sys.executable).with_name("steadyhand"))


def test_a_broadcast_wakes_a_waiter_of_the_same_database(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    waiter, sender = WakeChannel(db), WakeChannel(db)
    woken = threading.Event()
    waiter.wait(0)  # binds the waiter's socket, as a worker's first wait does

    def wait_long() -> None:
        waiter.wait(60)
        woken.set()

    thread = threading.Thread(target=wait_long, daemon=True)
    thread.start()
    sender.broadcast()
    assert woken.wait(20), "the waiter slept through the broadcast"
    waiter.close()
    sender.close()
    assert not list(channel_dir(db).glob(f"*{SUFFIX}")), "a closed channel leaves no socket"


def test_a_socket_left_by_a_dead_process_is_removed_by_the_next_broadcast(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store.db"
    directory = channel_dir(db)
    directory.mkdir(mode=0o700, exist_ok=True)
    stale = directory / f"999999-dead{SUFFIX}"
    orphan = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    orphan.bind(str(stale))
    orphan.close()  # the file stays, as after a crash
    channel = WakeChannel(db)
    channel.broadcast()
    channel.close()
    assert not stale.exists()


def test_a_start_wakes_a_worker_in_another_process(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    command = [
        STEADYHAND, "worker", "--app", "tests.apps.scripted:app", "--db", store_url,
        "--poll", "60", "--watchdog", "60",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        eventually(lambda: "started on" in log.read_text(), timeout=30, what="the worker starting")
        client = Client(app, store)
        for _ in range(3):
            started = client.start("one", {"ledger": str(tmp_path / "ledger.db")})
            status = client.wait(started.workflow_id, timeout=20)
            assert status.state == "completed", log.read_text()[-2000:]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
