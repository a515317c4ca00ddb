"""Secrets never leave (issue 15 §1, §9, §11): a store URL carrying a known password is
used for a whole run (CLI commands, a worker process, the ingress, the dashboard) and every
output is scanned for it; senders and browsers get generic error bodies."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from steadyhand import (
    App,
    Client,
    Context,
    Decision,
    Fail,
    PermanentError,
    Step,
    WorkflowView,
    open_store,
)
from steadyhand.cli.main import main
from steadyhand.core.errors import StoreUnavailable
from steadyhand.core.redact import redact
from steadyhand.store import Store
from steadyhand.web import DashboardOptions, create_app
from steadyhand.web.ingress import create_ingress, sign
from tests.apps.events import app
from tests.conftest import running_worker

PASSWORD = "Sup3r-Secret-Pw-1b2c"
ROOT = Path(__file__).resolve().parents[2]
STEADYHAND = str(Path(sys.executable).with_name("steadyhand"))
APP = "tests.apps.events:app"


@pytest.fixture
def secret_url(store_url: str, store: Store) -> str:
    """The test store's URL with the password in both places a libpq URL can carry one
    (the servers under test trust loopback, so the password is accepted and ignored)."""
    if store_url.startswith("sqlite"):
        return f"{store_url}?password={PASSWORD}"
    return store_url.replace("postgres@", f"postgres:{PASSWORD}@", 1) + f"&password={PASSWORD}"


def test_redact_hides_every_form_of_password() -> None:
    for text in (
        f"postgresql://u:{PASSWORD}@h:5432/db?schema=s",
        f"postgresql://u@h/db?sslmode=require&password={PASSWORD}&x=1",
        f"host=h password={PASSWORD} dbname=x",
        f"mysql://root:{PASSWORD}@h/db",
        f"postgres://u:{PASSWORD}@h/db: connection refused",
    ):
        assert PASSWORD not in redact(text), text
        assert "***" in redact(text)
    assert redact("sqlite:///data/steadyhand.db") == "sqlite:///data/steadyhand.db"


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in (0, 1, 2, 4, 5), result.output
    return result.output  # stdout and stderr, as a terminal shows them


def test_no_cli_output_names_the_password(secret_url: str) -> None:
    outputs = {
        "migrate": cli("migrate", "--db", secret_url),
        "list": cli("list", "--db", secret_url),
        "status": cli("status", "no-such-id", "--db", secret_url),
        "explain": cli("explain", "no-such-id", "--db", secret_url),
        "stats": cli("stats", "--db", secret_url),
        "cancel": cli("cancel", "no-such-id", "--db", secret_url),
        "retry": cli("retry", "no-such-id", "--db", secret_url),
        "start": cli("start", "nothing-registered", "--app", APP, "--db", secret_url),
        "no-migrate": cli("list", "--no-migrate", "--db", secret_url),
        "bad scheme": cli("list", "--db", f"mysql://root:{PASSWORD}@db.example/x"),
        "unreachable": cli(
            "list", "--db", f"postgresql://u:{PASSWORD}@127.0.0.1:1/x?connect_timeout=1"
        ),
    }
    assert "schema version" in outputs["migrate"]
    assert "no workflow" in outputs["status"] and "***" in outputs["status"]
    assert "unsupported store URL" in outputs["bad scheme"]
    for name, text in outputs.items():
        assert PASSWORD not in text, f"{name}: {text}"


def test_the_worker_log_does_not_name_the_password(secret_url: str, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    command = [STEADYHAND, "--log-level", "INFO", "worker", "--app", APP, "--db", secret_url]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "started on" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = log.read_text()
    assert "started on" in text
    assert PASSWORD not in text


def test_http_bodies_and_logs_name_neither_password_nor_internals(
    secret_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = open_store(secret_url)
    try:
        client = Client(app, store)
        secret = "whsec_secret_test_1234"
        bodies = []
        with TestClient(create_ingress(client, {"shop": secret})) as http:
            for message in (
                {"event": "paid", "key": "nobody"},  # no such workflow: 404
                {"event": "paid", "key": "k1", "start": {"workflow": "secret_flow"}},  # 400
            ):
                body = json.dumps(message).encode()
                response = http.post(
                    "/events/shop",
                    content=body,
                    headers={"Steadyhand-Signature": sign(secret, body)},
                )
                assert response.status_code in (400, 404)
                bodies.append(response.text)
        with TestClient(create_app(store, DashboardOptions(token="t" * 32))) as browser:
            page = browser.get(
                "/workflows/no-such-id", headers={"Authorization": "Bearer " + "t" * 32}
            )
            assert page.status_code == 404
            bodies.append(page.text)
    finally:
        store.close()
    for body in bodies:
        assert PASSWORD not in body
        assert (
            secret_url.split("?", maxsplit=1)[0].rsplit("@", maxsplit=1)[-1] not in body
        )  # nor the store's address
    assert "join" not in bodies[1] and "checkout" not in bodies[1]  # registered workflows
    logged = caplog.text
    assert "no workflow" in logged  # the details went to the log...
    assert PASSWORD not in logged  # ...without the password


def test_a_store_outage_is_a_generic_503(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(app, store)

    def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable(f"SQLite store /srv/private/steadyhand.db: locked ({PASSWORD})")

    monkeypatch.setattr(client, "signal", down)
    secret = "whsec_secret_test_1234"
    body = json.dumps({"event": "paid", "key": "k"}).encode()
    with TestClient(create_ingress(client, {"shop": secret})) as http:
        response = http.post(
            "/events/shop", content=body, headers={"Steadyhand-Signature": sign(secret, body)}
        )
    assert response.status_code == 503
    assert "/srv/private" not in response.text and PASSWORD not in response.text


# -- secrets on command lines (§9) ---------------------------------------------------------


def test_a_secret_passed_as_an_argument_is_warned_about(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--app", "no_such_module:app", "--secret", "shop=whsec_x"]
    )
    assert "visible to every user" in result.stderr and "--secret-file" in result.stderr
    result = CliRunner().invoke(main, ["dashboard", "--token", "short", "--host", "0.0.0.0"])
    assert "visible to every user" in result.stderr


def test_the_dashboard_reads_its_token_from_a_file_and_wants_a_long_one_off_loopback(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("too-short\n")
    result = CliRunner().invoke(
        main, ["dashboard", "--token-file", str(token_file), "--host", "0.0.0.0"]
    )
    assert result.exit_code == 2
    assert "at least 24 characters" in result.stderr
    assert "visible to every user" not in result.stderr
    assert "too-short" not in result.output + result.stderr
    missing = CliRunner().invoke(main, ["dashboard", "--token-file", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "cannot read the token file" in missing.stderr


def test_a_malformed_secret_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEADYHAND_INGRESS_SECRETS", "whsec_lonely_secret")
    result = CliRunner().invoke(main, ["serve", "--app", APP, "--db", "sqlite:///unused.db"])
    assert result.exit_code == 2
    assert "whsec_lonely_secret" not in result.output + result.stderr


def test_an_agent_error_quoting_a_connection_url_is_recorded_redacted(store: Store) -> None:
    deploy = App()

    @deploy.agent()
    def book(ctx: Context) -> str:
        raise PermanentError(f"could not connect to postgresql://app:{PASSWORD}@db/x")

    deploy.workflow("book", [Step("book", book)])
    client = Client(deploy, store)
    workflow_id = client.start("book", {}).workflow_id
    with running_worker(deploy, store):
        assert client.wait(workflow_id, timeout=20).done
    failed = client.view(workflow_id).latest("attempt_failed")
    assert failed is not None and "postgresql://app:***@db/x" in str(failed.get("error"))
    with store.snapshot() as tx:
        stored = " ".join(r[0] for r in tx.query("SELECT data FROM facts").fetchall())
    assert PASSWORD not in stored
    explained = CliRunner().invoke(main, ["explain", workflow_id, "--db", store.url])
    assert explained.exit_code == 0 and PASSWORD not in explained.output


def test_a_reason_quoting_a_connection_url_is_shown_redacted(store: Store) -> None:
    """A supervisor's reason is recorded as written; every place that shows it (status,
    list, explain, the dashboard's pages) redacts it."""
    deploy = App()

    @deploy.supervisor()
    def gives_up(view: WorkflowView, now: float) -> Decision:
        reason = f"ledger at postgresql://ledger:{PASSWORD}@db/x refused us"
        return Decision((Fail(reason),), reason)

    deploy.process("doomed", gives_up)
    client = Client(deploy, store)
    workflow_id = client.start("doomed", {}).workflow_id
    with running_worker(deploy, store):
        assert client.wait(workflow_id, timeout=20).state == "failed"
    shown = {
        name: CliRunner().invoke(main, [*args, "--db", store.url], env={"COLUMNS": "300"}).output
        for name, args in {
            "status": ["status", workflow_id],
            "explain": ["explain", workflow_id],
            "list": ["list", "--state", "failed"],
        }.items()
    }
    token = "t" * 32
    with TestClient(create_app(store, DashboardOptions(token=token))) as browser:
        for path in (f"/workflows/{workflow_id}", "/workflows?state=failed", "/"):
            page = browser.get(path, headers={"Authorization": f"Bearer {token}"})
            assert page.status_code == 200
            shown[path] = page.text
    assert "ledger:***@db" in shown["status"]
    for name, text in shown.items():
        assert PASSWORD not in text, name
