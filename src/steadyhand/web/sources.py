"""Ingress sources kept apart: each sender has its own secret and, optionally, the list of
event names it may send and of workflows it may start. A list denies everything it does
not name; no list (None) allows any, as before lists existed.

Configured in code (`Source(...)`), or for `steadyhand serve` from a JSON file:

    {"shop": {"secret_file": "/run/secrets/shop", "events": ["order_paid"],
              "starts": ["order"]},
     "bank": {"secret_env": "BANK_SECRET", "events": ["payment_settled"], "starts": []}}

Secrets come from a file or an environment variable, never from the command line (where
`ps` shows them to every user of the machine).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.errors import InputError

MIN_SECRET_CHARS = 16


@dataclass(frozen=True)
class Source:
    """One sender: its secret, and what it may do (None: anything)."""

    secret: str
    events: frozenset[str] | None = None
    starts: frozenset[str] | None = None

    def refusal(self, event: str, start: str | None) -> str | None:
        """Why this source may not send `event` (starting `start`), or None when it may."""
        if self.events is not None and event not in self.events:
            return "this source may not send that event"
        if start is not None and self.starts is not None and start not in self.starts:
            return "this source may not start that workflow"
        return None


def as_sources(given: Mapping[str, str | Source]) -> dict[str, Source]:
    """Plain `source -> secret` entries become sources that may do anything."""
    return {
        name: value if isinstance(value, Source) else Source(secret=value)
        for name, value in given.items()
    }


def read_secret_file(path: str, what: str) -> str:
    """The secret in file `path` (surrounding whitespace dropped), or a clear InputError."""
    try:
        secret = Path(path).read_text().strip()
    except OSError as exc:
        raise InputError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if not secret:
        raise InputError(f"the {what} file {path} is empty")
    return secret


def sources_from_file(path: str, environ: Mapping[str, str] | None = None) -> dict[str, Source]:
    """Sources from a JSON file (see the module docstring)."""
    env = os.environ if environ is None else environ
    try:
        config = jsoncodec.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read the sources file {path}: {exc.strerror}") from None
    except jsoncodec.JSONDecodeError as exc:
        raise InputError(f"the sources file {path} is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise InputError(f"the sources file {path} must hold an object: source -> settings")
    return {name: _source(name, entry, env, path) for name, entry in config.items()}


def _source(name: str, entry: Any, env: Mapping[str, str], path: str) -> Source:
    where = f"source {name!r} in {path}"
    if not isinstance(entry, dict):
        raise InputError(f"{where} must be an object with secret_file or secret_env")
    unknown = set(entry) - {"secret_file", "secret_env", "events", "starts"}
    if unknown:
        raise InputError(f"{where} has unknown settings {sorted(unknown)}")
    if "secret_file" in entry:
        secret = read_secret_file(str(entry["secret_file"]), f"secret of {name}")
    elif "secret_env" in entry:
        secret = env.get(str(entry["secret_env"]), "")
        if not secret:
            raise InputError(f"{where}: environment variable {entry['secret_env']} is unset")
    else:
        raise InputError(f"{where} needs secret_file or secret_env (no secrets in the file)")
    return Source(secret, _names(entry, "events", where), _names(entry, "starts", where))


def _names(entry: Mapping[str, Any], field: str, where: str) -> frozenset[str] | None:
    value = entry.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}: {field} must be a list of names")
    return frozenset(value)
