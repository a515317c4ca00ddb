"""Input limits shared by every entry point (Python API, HTTP ingress, SQL functions).

One home for the numbers, so the Python checks, the ingress and the SQL functions in
`store/migrations/postgres/006_security.sql` refuse the same things. The SQL migration
repeats the numbers (SQL cannot import Python); a test compares them.
"""

from __future__ import annotations

from steadyhand.core.errors import InputError

MAX_NAME_CHARS = 200  # workflow, step and event names
MAX_KEY_CHARS = 500  # idempotency keys and dedupe keys
MAX_WORKFLOW_ID_CHARS = 200  # workflow ids (ours are 28 characters)
MAX_PAYLOAD_BYTES = 1_000_000  # one input, payload or result, encoded as compact JSON
MAX_FILTER_CHARS = 500  # list filters and cursors
MAX_JSON_DEPTH = 200  # levels a JSON value may nest below its top (`[[1]]` is 2 deep);
# the SQL functions hold it too (postgres/009_limits.sql), so nothing stored is too deep to load


def check_text(value: object, what: str, max_chars: int, *, empty: bool = False) -> str:
    """`value` as a string a database can store and a log can show, or an InputError.

    Refuses non-strings, over-long strings, NUL characters (PostgreSQL text cannot hold
    them) and lone surrogates (not encodable as UTF-8): each would otherwise surface as a
    database error far from the caller.
    """
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, not {type(value).__name__}")
    if not value and not empty:
        raise InputError(f"{what} must not be empty")
    if len(value) > max_chars:
        raise InputError(f"{what} is {len(value)} characters; the limit is {max_chars}")
    if "\x00" in value:
        raise InputError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} is not valid Unicode (a lone surrogate)") from None
    return value
