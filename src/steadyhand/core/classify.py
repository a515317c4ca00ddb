"""What an exception says about a call: definitely not done, or uncertain.

A call is **definitely not done** only when that is known: the agent raised
`PermanentError` (a refusal) or `TransientError` (it asserts nothing happened), or the
exception happens before a request leaves (connection refused, DNS failure, connect or pool
timeout, a malformed URL). Every other exception — read and write timeouts, a connection
reset mid-answer, protocol errors, `TimeoutError`, anything unexpected — is **uncertain**:
the remote service may have acted. Uncertain calls are probed before the next attempt and
compensated when rolling back.

The common HTTP clients (httpx, requests/urllib3, aiohttp) are recognised by the qualified
names of their exceptions, so none of them is a dependency. Pure: no I/O, no imports of
those libraries. The table in docs/OUTCOMES.md mirrors `BEFORE_SEND` and `UNCERTAIN_NAMES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from steadyhand.core.errors import OutcomeUnknown, PermanentError, TransientError

NOT_DONE = "not_done"  # the call certainly had no effect: retry freely, nothing to undo
UNCERTAIN = "uncertain"  # it may have had an effect: probe before retrying, undo on rollback
PERMANENT = "permanent"  # a refusal: not done, and retrying cannot help
VERDICTS = (NOT_DONE, UNCERTAIN, PERMANENT)

Classifier = Callable[[BaseException], "str | None"]
"""A step's own rule: an exception in, a verdict (or None: use the default rules) out."""

BEFORE_SEND: frozenset[str] = frozenset(
    {
        # standard library
        "builtins.ConnectionRefusedError",
        "socket.gaierror",
        "socket.herror",
        # httpx (and httpcore, which it wraps)
        "httpx.ConnectError",
        "httpx.ConnectTimeout",
        "httpx.PoolTimeout",
        "httpx.UnsupportedProtocol",
        "httpx.InvalidURL",
        "httpcore.ConnectError",
        "httpcore.ConnectTimeout",
        "httpcore.PoolTimeout",
        "httpcore.UnsupportedProtocol",
        # requests and urllib3
        "requests.ConnectTimeout",
        "requests.InvalidURL",
        "requests.MissingSchema",
        "requests.InvalidSchema",
        "urllib3.NewConnectionError",
        "urllib3.NameResolutionError",
        "urllib3.ConnectTimeoutError",
        "urllib3.EmptyPoolError",
        "urllib3.LocationParseError",
        # aiohttp
        "aiohttp.ClientConnectorError",
        "aiohttp.ClientConnectorDNSError",
        "aiohttp.ConnectionTimeoutError",
        "aiohttp.InvalidURL",
    }
)
"""Exceptions raised before the request leaves: the remote service never saw it. Names are
`<top-level package>.<class>`; subclasses match too."""

UNCERTAIN_NAMES: frozenset[str] = frozenset(
    {
        "builtins.TimeoutError",
        "builtins.ConnectionResetError",
        "builtins.ConnectionAbortedError",
        "builtins.BrokenPipeError",
        "httpx.ReadTimeout",
        "httpx.WriteTimeout",
        "httpx.ReadError",
        "httpx.WriteError",
        "httpx.RemoteProtocolError",
        "httpx.LocalProtocolError",
        "requests.ConnectionError",
        "requests.ReadTimeout",
        "requests.ChunkedEncodingError",
        "urllib3.ReadTimeoutError",
        "urllib3.ProtocolError",
        "aiohttp.ServerDisconnectedError",
        "aiohttp.ServerTimeoutError",
        "aiohttp.SocketTimeoutError",
        "aiohttp.ClientPayloadError",
    }
)
"""Exceptions known to leave the outcome open (listed for the docs and for precedence:
a class here beats a base class in `BEFORE_SEND`). Anything unlisted is uncertain too."""

HTTP_STATUS_ERRORS = frozenset(
    {"httpx.HTTPStatusError", "requests.HTTPError", "aiohttp.ClientResponseError"}
)
"""`raise_for_status()` errors: the service answered. A 4xx (it refused the request) or a
503 (it was unavailable) means it did not act; other 5xx answers (500, 502, 504: a crash
or a gateway that gave up) leave the outcome open."""

WRAPPERS = frozenset({"requests.ConnectionError", "urllib3.MaxRetryError"})
"""Exceptions whose meaning is the exception they wrap (requests raises ConnectionError both
for a refused connection and for a reset mid-answer)."""

_MAX_CAUSES = 8  # how far down a chain of wrapped exceptions to look


@dataclass(frozen=True)
class Overrides:
    """A step's own classification, from its retry policy (exception names) or a function."""

    not_done: tuple[str, ...] = ()
    uncertain: tuple[str, ...] = ()
    classifier: Classifier | None = None


def qualified_names(exc_type: type[BaseException]) -> Iterator[tuple[str, str]]:
    """(`package.Class`, `full.module.Class`) for the type and each of its bases, nearest
    first: `httpx._exceptions.ReadTimeout` also answers to `httpx.ReadTimeout`."""
    for cls in exc_type.__mro__:
        module = cls.__module__ or ""
        yield f"{module.split('.')[0]}.{cls.__qualname__}", f"{module}.{cls.__qualname__}"


def matches(exc: BaseException, names: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether `exc` is (a subclass of) one of `names`: qualified, package-qualified or bare
    class names."""
    wanted = set(names)
    return any(
        short in wanted or full in wanted or full.rsplit(".", 1)[-1] in wanted
        for short, full in qualified_names(type(exc))
    )


def classify(exc: BaseException, overrides: Overrides | None = None) -> str:
    """The verdict for `exc`: `NOT_DONE`, `UNCERTAIN` or `PERMANENT` (see the module)."""
    if isinstance(exc, PermanentError):
        return PERMANENT
    if isinstance(exc, TransientError):
        return NOT_DONE
    if isinstance(exc, OutcomeUnknown):
        return UNCERTAIN
    rules = overrides or Overrides()
    if rules.classifier is not None:
        verdict = rules.classifier(exc)
        if verdict is not None:
            if verdict not in VERDICTS:
                raise ValueError(f"a classifier returned {verdict!r}; expected one of {VERDICTS}")
            return verdict
    if rules.uncertain and matches(exc, rules.uncertain):
        return UNCERTAIN
    if rules.not_done and matches(exc, rules.not_done):
        return NOT_DONE
    return builtin_verdict(exc)


def builtin_verdict(exc: BaseException) -> str:
    """The built-in table: before-send errors (also when wrapped, as requests wraps urllib3's)
    and refusing HTTP answers are not done; everything else is uncertain."""
    link: BaseException | None = exc
    for _ in range(_MAX_CAUSES):
        if link is None:
            break
        verdict = _table_verdict(link)
        if verdict is not None and verdict != UNCERTAIN:
            return verdict
        link = _wrapped(link) if matches(link, WRAPPERS) else None
    return UNCERTAIN


def _table_verdict(exc: BaseException) -> str | None:
    """The verdict of the nearest class of `exc` the tables name, or None."""
    for short, full in qualified_names(type(exc)):
        if short in UNCERTAIN_NAMES or full in UNCERTAIN_NAMES:
            return UNCERTAIN
        if short in BEFORE_SEND or full in BEFORE_SEND:
            return NOT_DONE
        if short in HTTP_STATUS_ERRORS:
            return _status_verdict(exc)
    return None


def _status_verdict(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int) and (400 <= status < 500 or status == 503):
        return NOT_DONE
    return UNCERTAIN


def _wrapped(exc: BaseException) -> BaseException | None:
    """What a client's wrapper exception wraps: urllib3's MaxRetryError keeps it in `reason`,
    requests' ConnectionError among its arguments."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    for arg in exc.args:
        if isinstance(arg, BaseException):
            return arg
    return exc.__cause__
