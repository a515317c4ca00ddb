"""Hostile input on both backends: whatever a caller or a sender throws at the API, the
ingress or `open_store`, it is refused with a `SteadyhandError` (or a 4xx) and a message,
and nothing is written; payloads are stored as data, never evaluated or unpickled."""

from __future__ import annotations

import json
import math
import pickle
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from steadyhand import App, Client, Context, SteadyhandError, Step, open_store
from steadyhand.store import Store
from steadyhand.web.ingress import create_ingress, sign
from tests.apps.events import app
from tests.conftest import running_worker

SECRET = "whsec_hostile_5d2a"
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def counts(store: Store) -> tuple[int, int, int]:
    with store.snapshot() as tx:
        return tuple(  # type: ignore[return-value]
            tx.query(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("workflows", "facts", "tasks")
        )


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_leaf | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
poison = st.sampled_from(
    [
        {1, 2},
        b"bytes",
        math.nan,
        math.inf,
        -math.inf,
        object(),
        {("tuple", "key"): 1},
        {"deep": "x" * 1_100_000},
        complex(1, 2),
        Path("/etc/passwd"),
    ]
)


@st.composite
def bad_inputs(draw: st.DrawFn) -> Any:
    """JSON-ish data with one value that cannot be stored, somewhere inside it."""
    bad = draw(poison)
    wrap = draw(st.sampled_from(["bare", "dict", "list", "nested"]))
    if wrap == "dict":
        return {draw(st.text(max_size=8)): bad, "ok": draw(json_values)}
    if wrap == "list":
        return [draw(json_values), bad]
    if wrap == "nested":
        return {"a": [{"b": [bad]}]}
    return bad


def deeply_nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


names = st.one_of(
    st.just(""),
    st.text(max_size=30),
    st.text(alphabet="é漢字🙂\u200b\x00 /:", min_size=1, max_size=10),
    st.just("x" * 10_000),
    st.integers(),
    st.none(),
    st.binary(max_size=10),
)


@FUZZ
@given(name=names, value=json_values)
def test_start_refuses_unknown_or_malformed_names(store: Store, name: Any, value: Any) -> None:
    client = Client(app, store)
    before = counts(store)
    with pytest.raises(SteadyhandError) as caught:
        client.start(name, value)
    assert str(caught.value)
    assert counts(store) == before


@FUZZ
@given(value=bad_inputs(), key=st.none() | st.text(max_size=10))
def test_start_refuses_inputs_that_are_not_json(store: Store, value: Any, key: Any) -> None:
    client = Client(app, store)
    before = counts(store)
    with pytest.raises(SteadyhandError, match=r"JSON|limit") as caught:
        client.start("join", value, key=key or None)
    assert str(caught.value)
    assert counts(store) == before


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_is_refused_or_stored_faithfully(store: Store, depth: int) -> None:
    client = Client(app, store)
    before = counts(store)
    try:
        started = client.start("join", {"needed": [], "x": deeply_nested(depth)})
    except SteadyhandError as exc:
        assert str(exc)
        assert counts(store) == before
    else:
        view = client.view(started.workflow_id)
        assert view.input["x"] == deeply_nested(depth)


@pytest.mark.parametrize(
    "key", ["", "k" * 501, 17, b"bytes", ["list"]], ids=["empty", "long", "int", "bytes", "list"]
)
def test_start_refuses_bad_idempotency_keys(store: Store, key: Any) -> None:
    before = counts(store)
    with pytest.raises(SteadyhandError, match="idempotency key"):
        Client(app, store).start("join", {"needed": []}, key=key)
    assert counts(store) == before


@FUZZ
@given(
    event=names,
    payload=json_values | bad_inputs(),
    target=st.sampled_from(["none", "both", "missing-id", "missing-key"]),
    dedupe=st.none() | st.text(max_size=5) | st.just("d" * 600) | st.integers(),
)
def test_signal_refuses_bad_events(
    store: Store, event: Any, payload: Any, target: str, dedupe: Any
) -> None:
    client = Client(app, store)
    before = counts(store)
    where: dict[str, Any] = {
        "none": {},
        "both": {"workflow_id": "w", "key": "k"},
        "missing-id": {"workflow_id": f"nope-{secrets.token_hex(4)}"},
        "missing-key": {"key": f"nope-{secrets.token_hex(4)}"},
    }[target]
    with pytest.raises(SteadyhandError) as caught:
        client.signal(event, payload, dedupe_key=dedupe, **where)
    assert str(caught.value)
    assert counts(store) == before


# -- HTTP ingress -----------------------------------------------------------------------------


@pytest.fixture
def http(store: Store) -> Iterator[TestClient]:
    ingress = create_ingress(Client(app, store), {"shop": SECRET}, max_body=64 * 1024)
    with TestClient(ingress) as client:
        yield client


def post(http: TestClient, body: bytes, signature: str | None = None, source: str = "shop") -> Any:
    header = sign(SECRET, body) if signature is None else signature
    return http.post(
        f"/events/{source}",
        content=body,
        headers={"Steadyhand-Signature": header, "Content-Type": "application/json"},
    )


valid_names = st.from_regex(r"[a-z][a-z0-9_.-]{0,15}", fullmatch=True)
messages = st.fixed_dictionaries(
    {},
    optional={
        "event": valid_names | json_values.filter(lambda v: not isinstance(v, str)),
        "payload": json_values,
        "workflow_id": json_values,
        "key": json_values,
        "dedupe_key": json_values,
        "start": json_values | st.fixed_dictionaries({"workflow": names.filter(
            lambda n: not isinstance(n, bytes)), "input": json_values}),
        "sneaky": json_values,
        "__class__": st.just("os.system"),
    },
)  # fmt: skip


@pytest.mark.parametrize("event", ["", "has space", "a/b", "x" * 201])
def test_ingress_answers_400_to_malformed_event_names(
    http: TestClient, store: Store, event: str
) -> None:
    before = counts(store)
    body = json.dumps({"event": event, "key": "k", "start": {"workflow": "join"}}).encode()
    answer = post(http, body)
    assert answer.status_code == 400, answer.text
    assert counts(store) == before


@FUZZ
@given(message=messages | json_values)
def test_ingress_answers_4xx_to_malformed_messages(
    http: TestClient, store: Store, message: Any
) -> None:
    before = counts(store)
    answer = post(http, json.dumps(message).encode())
    if answer.status_code == 202:  # a well-formed event for a workflow it could start
        assert isinstance(message, dict) and isinstance(message.get("start"), dict)
        return
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]
    assert counts(store) == before


def test_ingress_answers_4xx_to_deeply_nested_bodies(http: TestClient, store: Store) -> None:
    before = counts(store)
    body = b'{"event": "a", "key": "k", "payload": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    answer = post(http, body)
    assert 400 <= answer.status_code < 500, answer.text
    assert counts(store) == before


@FUZZ
@given(body=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_ingress_answers_4xx_to_random_bytes(http: TestClient, store: Store, body: bytes) -> None:
    before = counts(store)
    answer = post(http, body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]
    assert counts(store) == before


@FUZZ
@given(
    header=st.text(max_size=80)
    | st.builds(
        lambda t, v: f"t={t},v1={v}", st.integers(), st.text("0123456789abcdef", max_size=64)
    )
)
def test_ingress_refuses_bad_signatures(http: TestClient, store: Store, header: str) -> None:
    before = counts(store)
    body = json.dumps({"event": "a", "key": "k", "start": {"workflow": "join"}}).encode()
    try:
        answer = post(http, body, signature=header)
    except UnicodeEncodeError:
        return  # the HTTP client cannot even send such a header
    assert answer.status_code == 401
    assert answer.json()["error"]
    assert counts(store) == before


def test_ingress_refuses_stale_foreign_and_oversized_requests(
    http: TestClient, store: Store
) -> None:
    before = counts(store)
    body = json.dumps({"event": "a", "key": "k", "start": {"workflow": "join"}}).encode()
    assert post(http, body, signature=sign(SECRET, body, time.time() - 3600)).status_code == 401
    assert post(http, body, signature=sign("other-secret", body)).status_code == 401
    assert post(http, body, source="unknown").status_code == 401
    assert post(http, body, source="..%2f..%2fetc").status_code in (401, 404)
    huge = json.dumps({"event": "a", "key": "k", "payload": "x" * 2_000_000}).encode()
    answer = post(http, huge)
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]
    assert http.get("/events/shop").status_code == 405
    assert counts(store) == before


# -- open_store -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/db",
        "http://example.com/store",
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
        "sqlite:////nonexistent-dir-steadyhand/deeper/x.db",
        "postgresql://postgres@127.0.0.1:5432/test?schema=bad;DROP TABLE facts",
    ],
)
def test_open_store_refuses_invalid_urls_with_a_message(url: str) -> None:
    with pytest.raises(SteadyhandError) as caught:
        store = (
            open_store(url, connect_timeout=2.0) if url.startswith("postgres") else open_store(url)
        )
        store.close()
    assert str(caught.value)


# -- data stays data --------------------------------------------------------------------------

EVIL = [
    "__import__('os').system('touch {marker}')",
    "{{{{ ''.__class__.__mro__[1].__subclasses__() }}}}",
    "'; DROP TABLE facts; --",
]


def test_payloads_are_stored_as_plain_data_never_evaluated(store: Store, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pickled = pickle.dumps({"x": 1}).decode("latin-1")
    strings = [s.format(marker=marker) for s in EVIL] + [pickled]
    client = Client(app, store)
    started = client.start("join", {"needed": ["a"], "evil": strings}, key=strings[0])
    client.signal("a", {"evil": strings}, key=strings[0])
    view = client.view(started.workflow_id)
    assert view.input["evil"] == strings
    event = view.event("a")
    assert event is not None and event.get("payload") == {"evil": strings}
    assert not marker.exists()
    assert counts(store)[1] >= 2  # the facts table is still there


def test_only_registered_agents_are_callable(store: Store) -> None:
    deploy = App()
    calls: list[str] = []

    @deploy.agent()
    def charge(ctx: Context) -> str:
        calls.append(ctx.step)
        return "ok"

    @deploy.agent()
    def ship(ctx: Context) -> str:
        return "ok"

    deploy.workflow("order", [Step("charge", charge), Step("ship", ship)])
    started = Client(deploy, store).start("order", {})
    running = App()  # a deploy that registers `charge` only: `ship` is just a name in the plan
    running.agent(name="charge")(charge)
    with running_worker(running, store):
        status = Client(running, store).wait(started.workflow_id, timeout=10)
    assert status.state == "failed"
    assert "agent 'ship' is not registered in this deploy" in (status.reason or "")
    assert calls == ["charge"]
