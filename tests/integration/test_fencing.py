"""A worker that cannot renew its lease stops treating the call as its own (issue 22).

A real HTTP service that takes longer than the lease and does not deduplicate requests in
flight stands in for the remote side. A worker is paused (SIGSTOP, both stores) or its
PostgreSQL traffic stalled by a proxy; a healthy worker takes over. The service must never
see a second request while the first is in progress, the workflow must complete once, and
the stale worker must say that it abandoned the call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from steadyhand import Client
from steadyhand.chaos.proxy import StallingProxy
from steadyhand.store import Store
from tests.apps.remote import app
from tests.apps.slowservice import SlowService
from tests.processes import ROOT, STEADYHAND, worker_process

APP = "tests.apps.remote:app"
LEASE = 1.0


def eventually(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not reached in {timeout:g}s: {what}")
        time.sleep(0.05)


def probe_said(client: Client, workflow_id: str, answer: str) -> bool:
    return any(
        f.kind == "probe_succeeded" and f.get("answer") == answer
        for f in client.view(workflow_id).facts
    )


def check_once(client: Client, workflow_id: str, service: SlowService) -> None:
    view = client.view(workflow_id)
    kinds = [f.kind for f in view.facts]
    assert kinds.count("attempt_lost") == 1, kinds
    assert kinds.count("attempt_scheduled") == 1, f"attempt 1 was sent again: {kinds}"
    assert probe_said(client, workflow_id, "unknown"), "the probe could not tell at first"
    # Then either a probe found the booking, or the stale worker's late answer said so.
    [key] = service.requests
    assert service.requests[key] == 1, "a second request reached the service"
    assert service.most_at_once[key] == 1


def test_a_paused_worker_abandons_its_call_and_the_service_sees_one_request(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    client = Client(app, store)
    stale_log = tmp_path / "stale.log"
    with SlowService(slow=8.0) as service:
        workflow_id = client.start("remote", {"service": service.url}).workflow_id
        with worker_process(store_url, stale_log, app=APP, lease=LEASE) as stale:
            assert service.started.wait(30), "the first request never reached the service"
            os.kill(stale.pid, signal.SIGSTOP)  # a long GC pause, a frozen VM
            try:
                with worker_process(store_url, tmp_path / "healthy.log", app=APP, lease=LEASE):
                    eventually(lambda: probe_said(client, workflow_id, "unknown"), "unknown")
                    os.kill(stale.pid, signal.SIGCONT)
                    assert client.wait(workflow_id, timeout=60).state == "completed"
                    late = "outcome_reported_late"
                    eventually(lambda: client.view(workflow_id).has(late), "the late report")
            finally:
                os.kill(stale.pid, signal.SIGCONT)
        check_once(client, workflow_id, service)
    log = stale_log.read_text()
    assert f"of workflow {workflow_id}" in log and "abandoning the call" in log
    assert "answered after its lease was lost" in log
    explained = subprocess.run(
        [STEADYHAND, "explain", workflow_id, "--db", store_url],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "probe 1 of booking answered unknown" in explained, "explain shows each probe"
    assert "asking again in" in explained, "and why the supervisor waited"


def test_a_partitioned_worker_cancels_its_async_call(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    if store_url.startswith("sqlite"):
        pytest.skip("a network partition needs a network: PostgreSQL only")
    client = Client(app, store)
    stale_log = tmp_path / "stale.log"
    with SlowService(slow=8.0) as service, StallingProxy.for_url(store_url)[0] as proxy:
        routed = store_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}", 1)
        assert routed != store_url
        workflow_id = client.start("remote_async", {"service": service.url}).workflow_id
        with worker_process(routed, stale_log, app=APP, lease=LEASE) as stale:
            assert service.started.wait(30), "the first request never reached the service"
            proxy.stall()
            try:
                with worker_process(store_url, tmp_path / "healthy.log", app=APP, lease=LEASE):
                    eventually(lambda: "abandoning the call" in stale_log.read_text(), "fence")
                    eventually(lambda: probe_said(client, workflow_id, "unknown"), "unknown")
                    proxy.heal()
                    assert client.wait(workflow_id, timeout=60).state == "completed"
            finally:
                proxy.heal()
            assert stale.poll() is None, "the partitioned worker carried on after the heal"
        check_once(client, workflow_id, service)
    assert not client.view(workflow_id).has("outcome_reported_late"), "its call was cancelled"
    assert f"of workflow {workflow_id}" in stale_log.read_text()
