"""The classification of exceptions: definitely not done, or uncertain (core.classify)."""

from __future__ import annotations

import socket

import httpx
import pytest

from steadyhand import OutcomeUnknown, PermanentError, TransientError
from steadyhand.core.classify import (
    NOT_DONE,
    PERMANENT,
    UNCERTAIN,
    Overrides,
    classify,
)


def foreign(module: str, name: str, *bases: type[BaseException]) -> type[BaseException]:
    """An exception class that claims to live in `module`, as requests' or aiohttp's do
    (neither is a dependency, so the table must recognise them by name)."""
    return type(name, bases or (Exception,), {"__module__": module})


# requests / urllib3 / aiohttp look-alikes, with their real inheritance where it matters.
RequestException = foreign("requests.exceptions", "RequestException", OSError)
RequestsConnectionError = foreign("requests.exceptions", "ConnectionError", RequestException)
RequestsTimeout = foreign("requests.exceptions", "Timeout", RequestException)
RequestsConnectTimeout = foreign(
    "requests.exceptions", "ConnectTimeout", RequestsConnectionError, RequestsTimeout
)
RequestsReadTimeout = foreign("requests.exceptions", "ReadTimeout", RequestsTimeout)
RequestsHTTPError = foreign("requests.exceptions", "HTTPError", RequestException)
MaxRetryError = foreign("urllib3.exceptions", "MaxRetryError")
NewConnectionError = foreign("urllib3.exceptions", "NewConnectionError")
ProtocolError = foreign("urllib3.exceptions", "ProtocolError")
ClientConnectorError = foreign("aiohttp.client_exceptions", "ClientConnectorError", OSError)
ServerDisconnectedError = foreign("aiohttp.client_exceptions", "ServerDisconnectedError")
ServerTimeoutError = foreign("aiohttp.client_exceptions", "ServerTimeoutError", TimeoutError)
ConnectionTimeoutError = foreign(
    "aiohttp.client_exceptions", "ConnectionTimeoutError", ServerTimeoutError
)
ClientResponseError = foreign("aiohttp.client_exceptions", "ClientResponseError")


def wrapped_by_requests(reason: BaseException) -> BaseException:
    retry = MaxRetryError("pool", "/", reason)
    retry.reason = reason  # type: ignore[attr-defined]
    return RequestsConnectionError(retry)


def status_error(status: int) -> BaseException:
    request = httpx.Request("POST", "http://127.0.0.1/bookings")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError("bad status", request=request, response=response)


def aiohttp_status(status: int) -> BaseException:
    exc = ClientResponseError("bad status")
    exc.status = status  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (PermanentError("sold out"), PERMANENT),
        (TransientError("503"), NOT_DONE),
        (OutcomeUnknown("cut off"), UNCERTAIN),
        (ConnectionRefusedError(), NOT_DONE),
        (socket.gaierror(-2, "Name or service not known"), NOT_DONE),
        (TimeoutError(), UNCERTAIN),
        (ConnectionResetError(), UNCERTAIN),
        (ValueError("a bug"), UNCERTAIN),
        (httpx.ConnectError("refused"), NOT_DONE),
        (httpx.ConnectTimeout("slow connect"), NOT_DONE),
        (httpx.PoolTimeout("pool"), NOT_DONE),
        (httpx.ReadTimeout("slow answer"), UNCERTAIN),
        (httpx.WriteTimeout("slow send"), UNCERTAIN),
        (httpx.RemoteProtocolError("cut off"), UNCERTAIN),
        (httpx.ReadError("reset"), UNCERTAIN),
        (status_error(409), NOT_DONE),
        (status_error(503), NOT_DONE),
        (status_error(500), UNCERTAIN),
        (status_error(504), UNCERTAIN),
        (RequestsConnectTimeout(), NOT_DONE),
        (RequestsReadTimeout(), UNCERTAIN),
        (wrapped_by_requests(NewConnectionError("refused")), NOT_DONE),
        (
            wrapped_by_requests(ProtocolError("Connection aborted.", ConnectionResetError())),
            UNCERTAIN,
        ),
        (RequestsConnectionError("no detail"), UNCERTAIN),
        (ClientConnectorError(), NOT_DONE),
        (ConnectionTimeoutError(), NOT_DONE),
        (ServerTimeoutError(), UNCERTAIN),
        (ServerDisconnectedError(), UNCERTAIN),
        (aiohttp_status(404), NOT_DONE),
        (aiohttp_status(502), UNCERTAIN),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value,
)
def test_builtin_table(exc: BaseException, verdict: str) -> None:
    assert classify(exc) == verdict


def test_a_wrapped_before_send_error_does_not_clear_an_unrelated_exception() -> None:
    try:
        try:
            raise httpx.ConnectError("refused")
        except httpx.ConnectError:
            raise KeyError("then the agent's own bug") from None
    except KeyError as exc:
        assert classify(exc) == UNCERTAIN


def test_a_step_overrides_by_name_and_by_function() -> None:
    names = Overrides(not_done=("ValueError",), uncertain=("httpx.ConnectError",))
    assert classify(ValueError("validated before sending"), names) == NOT_DONE
    assert classify(httpx.ConnectError("maybe sent"), names) == UNCERTAIN

    def rule(exc: BaseException) -> str | None:
        return PERMANENT if isinstance(exc, KeyError) else None

    with_rule = Overrides(classifier=rule)
    assert classify(KeyError("no such product"), with_rule) == PERMANENT
    assert classify(httpx.ReadTimeout("slow"), with_rule) == UNCERTAIN
    assert classify(PermanentError("the agent's own word wins"), with_rule) == PERMANENT

    with pytest.raises(ValueError, match="classifier returned"):
        classify(KeyError(), Overrides(classifier=lambda exc: "maybe"))
