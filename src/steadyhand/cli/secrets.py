"""Secrets for commands, without putting them where `ps` shows them: a file
(`--token-file`, `--secret-file`) or an environment variable, and a warning when one is
passed as a plain argument anyway."""

from __future__ import annotations

import click

from steadyhand.core.errors import InputError
from steadyhand.web.sources import read_secret_file

ARGUMENT_WARNING = (
    "warning: {what} passed on the command line is visible to every user of this machine "
    "(ps, /proc); use {instead} instead"
)


def warn_argument(what: str, instead: str) -> None:
    click.echo(ARGUMENT_WARNING.format(what=what, instead=instead), err=True)


def token_from(argument: str | None, path: str | None, env_value: str | None) -> str | None:
    """The dashboard token: `--token-file`, else `--token` (warned), else the environment."""
    if path and argument:
        raise InputError("--token and --token-file exclude each other; keep --token-file")
    if path:
        return read_secret_file(path, "token")
    if argument:
        warn_argument("--token", "--token-file or $STEADYHAND_DASHBOARD_TOKEN")
        return argument
    return env_value or None


def secrets_from_files(pairs: tuple[str, ...]) -> dict[str, str]:
    """`source=path` pairs (`--secret-file`) -> source -> the secret in that file."""
    found = {}
    for pair in pairs:
        source, sep, path = pair.partition("=")
        if not sep or not source or not path:
            raise InputError(f"--secret-file {pair!r} is not source=path/to/file")
        found[source] = read_secret_file(path, f"secret of {source}")
    return found
