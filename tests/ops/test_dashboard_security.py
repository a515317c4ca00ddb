"""The dashboard's defences over real HTTP, on both backends (issue 15 §3, §7, §8, §13):
Host and Origin checks, sessions that expire and die at logout, login throttling, hostile
query strings and cookies answered without a 500, and a paged timeline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from steadyhand import Client, open_store
from steadyhand.cli.main import main
from steadyhand.cli.ops import check_access
from steadyhand.store import Store
from steadyhand.web import DashboardOptions, create_app
from steadyhand.web.hosts import allowed_hosts
from steadyhand.web.security import SESSION_COOKIE, Guard
from tests.apps.scripted import app
from tests.ops.conftest import Scenario, serve

TOKEN = "a-dashboard-token-long-enough-1234"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def store(scenario: Scenario) -> Iterator[Store]:
    s = open_store(scenario.url)
    yield s
    s.close()


def test_a_rebound_host_or_a_foreign_origin_is_refused(store: Store) -> None:
    options = DashboardOptions(token=TOKEN, allowed_hosts=allowed_hosts("127.0.0.1"))
    with serve(create_app(store, options)) as base, httpx.Client(base_url=base) as web:
        assert web.get("/", headers=BEARER).status_code == 200
        port = base.rsplit(":", 1)[1]
        rebound = web.get("/", headers={**BEARER, "Host": f"attacker.example:{port}"})
        assert rebound.status_code == 421
        assert web.get("/healthz", headers={"Host": "attacker.example"}).status_code == 421
        foreign = {"Origin": "http://attacker.example"}
        assert web.post("/login", data={"token": TOKEN}, headers=foreign).status_code == 403
        assert web.post("/logout", headers=foreign).status_code == 403
        local = web.get("/", headers={**BEARER, "Host": f"localhost:{port}"})
        assert local.status_code == 200


def test_a_session_expires_and_dies_at_logout(store: Store) -> None:
    options = DashboardOptions(token=TOKEN, session_seconds=600)
    with serve(create_app(store, options)) as base:
        with httpx.Client(base_url=base) as person:
            person.post("/login", data={"token": TOKEN})
            cookie = person.cookies[SESSION_COOKIE]
            assert person.get("/").status_code == 200
            assert person.post("/logout").status_code == 303
        with httpx.Client(base_url=base, cookies={SESSION_COOKIE: cookie}) as thief:
            assert thief.get("/").status_code == 303  # the copied cookie died with the logout
        old = Guard(TOKEN, 600, clock=lambda: 1_000_000.0).new_session(authenticated=True)
        with httpx.Client(base_url=base, cookies={SESSION_COOKIE: old}) as stale:
            assert stale.get("/").status_code == 303  # genuine, signed, and expired
        fresh = Guard(TOKEN, 600).new_session(authenticated=True)
        with httpx.Client(base_url=base, cookies={SESSION_COOKIE: fresh}) as current:
            assert current.get("/").status_code == 200


def test_sessions_carry_their_issue_time_under_the_signature() -> None:
    now = [1_000_000.0]
    guard = Guard(TOKEN, 3600, clock=lambda: now[0])
    cookie = guard.new_session(authenticated=True)
    assert guard.verify(cookie) is not None
    nonce, flag, issued, signature = cookie.split(".")
    assert guard.verify(f"{nonce}.{flag}.{int(issued) + 3000}.{signature}") is None  # forged
    now[0] += 3599
    assert guard.verify(cookie) is not None
    now[0] += 2
    assert guard.verify(cookie) is None
    assert guard.verify("\u00e9" * 10) is None and guard.verify("a.b.c.d.e") is None


def test_failed_logins_are_throttled_per_client(store: Store) -> None:
    options = DashboardOptions(token=TOKEN, login_attempts=3, login_window=600)
    with serve(create_app(store, options)) as base, httpx.Client(base_url=base) as guesser:
        answers = [guesser.post("/login", data={"token": f"guess-{i}"}) for i in range(3)]
        assert [a.status_code for a in answers] == [401, 401, 401]
        blocked = guesser.post("/login", data={"token": TOKEN})  # even the right one, now
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert guesser.get("/", headers=BEARER).status_code == 200  # scripts are unaffected


def test_short_tokens_are_refused_off_loopback() -> None:
    assert check_access("127.0.0.1", "short", no_auth=False) is None
    assert "at least 24" in str(check_access("0.0.0.0", "short", no_auth=False))
    assert check_access("0.0.0.0", TOKEN, no_auth=False) is None


@pytest.mark.parametrize(
    "path",
    [
        "/workflows?name=%00",
        "/workflows?cursor=%00",
        "/workflows?cursor=inf~x",
        "/workflows?name=" + "n" * 600,
        "/workflows/%00",
        "/workflows/" + "w" * 300,
        "/workflows/x?after=%00",
        "/workflows/x?after=" + "9" * 40,
    ],
)
def test_hostile_query_strings_get_400_not_500(store: Store, path: str) -> None:
    with serve(create_app(store, DashboardOptions(token=TOKEN))) as base:
        assert httpx.get(base + path, headers=BEARER).status_code == 400


def test_non_ascii_cookies_and_csrf_values_are_refused_not_500(
    store: Store, scenario: Scenario
) -> None:
    with serve(create_app(store, DashboardOptions(token=TOKEN))) as base:
        raw_cookie = f"{SESSION_COOKIE}=\u00e9t\u00e9.1.2.x".encode("latin-1")
        page = httpx.get(base + "/", headers=[(b"cookie", raw_cookie)])
        assert page.status_code == 303
        with httpx.Client(base_url=base) as person:
            person.post("/login", data={"token": TOKEN})
            retry = person.post(
                f"/workflows/{scenario.failed}/retry", data={"csrf": "\u00e9\u00e9\ud7ff"}
            )
            assert retry.status_code == 403
            wrong = person.post("/login", data={"token": "\u00e9\ud7ff"})
            assert wrong.status_code == 401


def test_a_long_timeline_is_paged_in_the_dashboard_and_in_explain(
    store: Store, scenario: Scenario
) -> None:
    client = Client(app, store)
    workflow_id = client.start("trip", {"ledger": scenario.ledger}).workflow_id  # not run
    for i in range(25):
        client.signal(f"ping{i}", None, workflow_id=workflow_id)
    total = len(client.view(workflow_id).facts)
    assert total > 25
    options = DashboardOptions(token=TOKEN, timeline_page=10)
    with serve(create_app(store, options)) as base:
        first = httpx.get(f"{base}/workflows/{workflow_id}", headers=BEARER).text
        assert len(re.findall(r'id="fact-\d+"', first)) == 10
        assert f"10 of {total} facts shown" in first and "?after=10" in first
        second = httpx.get(f"{base}/workflows/{workflow_id}?after=10", headers=BEARER).text
        assert re.findall(r'id="fact-(\d+)"', second)[0] == "11"
    run = CliRunner().invoke(
        main,
        ["explain", workflow_id, "--limit", "10", "--db", scenario.url],
        env={"COLUMNS": "200"},
    )
    assert run.exit_code == 0 and "--after 10" in run.output
    paged = CliRunner().invoke(
        main, ["explain", workflow_id, "--json", "--after", "20", "--db", scenario.url]
    )
    assert paged.exit_code == 0
    story = json.loads(paged.stdout)
    assert story["total_facts"] == total and story["next_after"] is None
    assert [f["seq"] for f in story["facts"]] == list(range(21, total + 1))


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--name", "a\x00b"],
        ["list", "--cursor", "\x00"],
        ["list", "--cursor", "1e999~x"],
        ["status", "w\x00"],
        ["explain", "\ud800"],
        ["cancel", "w\x00"],
    ],
)
def test_hostile_cli_arguments_are_usage_errors(scenario: Scenario, args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--db", scenario.url])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an exception
    assert "error:" in result.output
