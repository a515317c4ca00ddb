"""Where a PostgreSQL store connects: multi-host URLs get the session role they need, and
passwords never reach a message."""

from __future__ import annotations

import pytest

from steadyhand.core.errors import InputError
from steadyhand.store.pg_connect import (
    READER_ATTRS,
    WRITER_ATTRS,
    hosts,
    redact,
    split_url,
    standby_message,
    with_session_attrs,
)

TWO = "postgresql://app:s3cret@db1:5432,db2:5433/orders"


def test_a_multi_host_url_gets_the_role_it_needs() -> None:
    assert hosts(TWO) == ["db1:5432", "db2:5433"]
    assert with_session_attrs(TWO, WRITER_ATTRS) == f"{TWO}?target_session_attrs=read-write"
    reader = with_session_attrs(f"{TWO}?sslmode=require", READER_ATTRS)
    assert reader == f"{TWO}?sslmode=require&target_session_attrs=prefer-standby"


def test_an_explicit_choice_and_a_single_host_are_left_alone() -> None:
    chosen = f"{TWO}?target_session_attrs=any"
    assert with_session_attrs(chosen, WRITER_ATTRS) == chosen
    single = "postgresql://app@db1:5432/orders"
    assert with_session_attrs(single, WRITER_ATTRS) == single


def test_the_schema_is_split_off_a_multi_host_url() -> None:
    conninfo, schema = split_url(f"{TWO}?schema=shop&connect_timeout=3")
    assert (conninfo, schema) == (f"{TWO}?connect_timeout=3", "shop")
    with pytest.raises(InputError, match="identifier"):
        split_url(f"{TWO}?schema=Bad-Name")


def test_passwords_never_reach_a_message() -> None:
    assert redact(TWO) == "postgresql://app:***@db1:5432,db2:5433/orders"
    assert "s3cret" not in standby_message(TWO)
    assert redact("postgresql://app@db1/orders") == "postgresql://app@db1/orders"
