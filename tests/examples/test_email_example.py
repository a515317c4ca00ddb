"""The email example on both backends: bounded attempts, one at a time, one delivery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from examples.email_flaky import MAX_ATTEMPTS, app, main, provider, send

from steadyhand import Client
from steadyhand.store import Store
from tests.conftest import running_worker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(store: Store) -> Iterator[Client]:
    with running_worker(app, store):
        yield Client(app, store)
    provider.configure()


def test_retries_until_the_first_success_then_stops(client: Client) -> None:
    provider.configure(fail_first=2)
    status = send(client, "ada@example.com", "Welcome!", key="welcome-ada")
    assert status.state == "completed"
    assert status.result["send"]["attempt"] == 3
    view = client.view(status.id)
    assert view.count("attempt_scheduled") == 3
    assert view.count("attempt_failed") == 2
    assert provider.calls[f"{status.id}:send"] == 3, "no call after the first success"
    assert len(provider.delivered) == 1
    assert provider.max_in_flight == 1


def test_gives_up_after_max_attempts_with_the_reason(client: Client) -> None:
    provider.configure(failure_rate=1.0)
    status = send(client, "alan@example.com", "Welcome!", key="welcome-alan")
    # The step says on_give_up="fail": the workflow stops for a person, with the reason.
    assert status.state == "failed"
    assert f"gave up after {MAX_ATTEMPTS} attempts" in (status.reason or "")
    assert "503 from the provider" in (status.reason or "")
    assert client.view(status.id).count("attempt_scheduled") == MAX_ATTEMPTS
    assert provider.calls[f"{status.id}:send"] == MAX_ATTEMPTS
    assert provider.delivered == {}
    assert provider.max_in_flight == 1


def test_sending_twice_with_one_key_sends_once(client: Client) -> None:
    provider.configure(fail_first=1)
    first = send(client, "grace@example.com", "Welcome!", key="welcome-grace")
    again = send(client, "grace@example.com", "Welcome!", key="welcome-grace")
    assert (first.id, first.state) == (again.id, "completed")
    assert sum(provider.calls.values()) == 2
    assert len(provider.delivered) == 1


def test_many_flaky_sends_never_overlap(client: Client) -> None:
    provider.configure(failure_rate=0.5, seed=11)
    started = [
        client.start("send_email", {"to": f"u{n}@example.com", "subject": "Hi"}).workflow_id
        for n in range(8)
    ]
    states = [client.wait(workflow_id, timeout=30).state for workflow_id in started]
    assert set(states) <= {"completed", "failed"}
    assert provider.max_in_flight == 1
    assert all(count <= MAX_ATTEMPTS for count in provider.calls.values())
    assert len(provider.delivered) == states.count("completed")


def test_main_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--emails", "2", "--failure-rate", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "email 2:" in out and "at most 1 call(s) in flight" in out
