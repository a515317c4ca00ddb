"""The search options `steadyhand list` adds to its state, name and time filters: by
idempotency key, id prefix, remote service, and values in the input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def search_options(fn: F) -> F:
    for option in reversed(
        (
            click.option("--key", default=None, help="Only the workflow with this key."),
            click.option("--id", "id_prefix", default=None, help="Only ids that start with this."),
            click.option(
                "--service", default=None, help="Only workflows whose plan calls this service."
            ),
            click.option(
                "--input",
                "input_filters",
                multiple=True,
                metavar="KEY=VALUE",
                help="Only workflows whose input holds VALUE (JSON, else a string) at KEY "
                "(a.b for nested keys); repeatable, all must match.",
            ),
        )
    ):
        fn = option(fn)
    return fn
