"""Secret redaction: the one function every message naming a store (or quoting an error
that might) goes through, so a database password never reaches a log, a terminal, an
HTTP body, the dashboard or `explain`.

It covers both places a libpq URL can carry a password (`user:password@host` and the
`?password=` parameter) and the `password=...` form of keyword connection strings.
"""

from __future__ import annotations

import re

HIDDEN = "***"
_SECRET_PARAMS = "password|sslpassword|passfile|sslkey|secret|token"
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s?#]*):(?P<pw>[^\s/?#]*)@")
_PARAM = re.compile(
    rf"(?P<head>(?:^|[?&;\s,(]|%20)(?:{_SECRET_PARAMS})\s*=\s*)(?P<pw>'[^']*'|[^&\s,;')\"]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with every password-like part of a URL or connection string replaced."""
    text = _USERINFO.sub(lambda m: f"{m['head']}:{HIDDEN}@", text)
    return _PARAM.sub(lambda m: f"{m['head']}{HIDDEN}", text)


def redact_url(url: str) -> str:
    """A store URL fit to show anyone (logs, CLI output, error messages)."""
    return redact(url)
