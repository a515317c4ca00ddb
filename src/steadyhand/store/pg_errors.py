"""What a PostgreSQL error means, said in words with what to do: the server is down, it has
no connection slot left, the role or password is wrong, the database does not exist, the
disk is full, the role lacks a privilege.

psycopg reports a failed connection as one `OperationalError` (with no SQLSTATE) and the
pool only as "couldn't get a connection after 10 s", so the cause is read from the server's
message here, and a pool timeout is diagnosed with one direct connection attempt.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
from psycopg import errors as pg

from steadyhand.core.errors import StoreError, StoreUnavailable

Diagnose = Callable[[], psycopg.Error | None]


def connect_error(exc: BaseException, where: str) -> StoreError:
    """The error for a connection that could not be made to `where` (a redacted URL)."""
    said = _first_line(exc)
    text = str(exc).lower()
    if "too many clients" in text or "too many connections" in text:
        return StoreUnavailable(
            f"PostgreSQL at {where} has no connection slot left ({said}). Lower the "
            "workers' --concurrency or the number of processes, put a pooler (PgBouncer) in "
            "front, or raise max_connections; steadyhand retries.",
            cause="too_many_clients",
        )
    if "does not exist" in text and "database" in text:
        return StoreError(
            f"the database named in {where} does not exist ({said}). Create it "
            "(`createdb <name>`) or fix the database name in the URL.",
            cause="database_missing",
        )
    if (
        "authentication failed" in text
        or ("role" in text and "does not exist" in text)
        or "no pg_hba.conf entry" in text
        or "password" in text
    ):
        return StoreError(
            f"PostgreSQL at {where} refused the login ({said}). Check the user and password "
            "in the URL (or PGPASSWORD / ~/.pgpass) and that pg_hba.conf admits this host.",
            cause="authentication_failed",
        )
    if "starting up" in text or "shutting down" in text or "recovery mode" in text:
        return StoreUnavailable(
            f"PostgreSQL at {where} is starting or stopping ({said}); steadyhand retries.",
            cause="connection_refused",
        )
    if "could not translate host name" in text or "name or service not known" in text:
        return StoreError(
            f"the host in {where} is unknown ({said}). Fix the host name in the URL.",
            cause="connection_refused",
        )
    return StoreUnavailable(
        f"cannot reach PostgreSQL at {where} ({said}). Is the server running, and does the URL "
        "name the right host and port? steadyhand retries.",
        cause="connection_refused",
    )


def store_error(
    exc: BaseException, where: str, diagnose: Diagnose | None = None, pool_size: int = 0
) -> StoreError:
    """The error for a statement or transaction that failed on `where`."""
    said = _first_line(exc)
    if isinstance(exc, pg.DiskFull) or "no space left on device" in str(exc).lower():
        return StoreUnavailable(
            f"disk full: PostgreSQL at {where} has no space left for its data or a "
            f"tablespace ({said}). Free space on the server's disk; steadyhand retries "
            "meanwhile and loses nothing that was committed.",
            cause="disk_full",
        )
    if isinstance(exc, pg.ReadOnlySqlTransaction):
        return StoreUnavailable(
            f"PostgreSQL at {where} accepts no writes ({said}): a standby, or "
            "default_transaction_read_only is on. Point the URL at the primary; steadyhand "
            "retries.",
            cause="read_only",
        )
    if isinstance(exc, pg.InsufficientPrivilege):
        return StoreError(
            f"permission denied on PostgreSQL at {where} ({said}). Grant the role in the URL "
            "the privileges steadyhand needs on its schema (see the README's least-privilege "
            "section), or use a role that has them.",
            cause="permission_denied",
        )
    if isinstance(exc, pg.LockNotAvailable):
        return StoreUnavailable(
            f"a lock on PostgreSQL at {where} was held by another session for too long "
            f"({said}); steadyhand retries.",
            cause="locked",
        )
    if isinstance(exc, pg.IntegrityError | pg.RaiseException):
        return StoreError(f"PostgreSQL refused the change: {said}", cause="refused")
    if _is_pool_timeout(exc):
        found = diagnose() if diagnose is not None else None
        if found is not None:
            return connect_error(found, where)
        return StoreUnavailable(
            f"every one of the {pool_size} pooled connections to PostgreSQL at {where} stayed "
            f"busy ({said}). Raise the pool size or lower the concurrency; steadyhand retries.",
            cause="pool_exhausted",
        )
    if isinstance(exc, psycopg.OperationalError):
        text = str(exc).lower()
        if "connection" in text and ("failed" in text or "refused" in text):
            return connect_error(exc, where)
        return StoreUnavailable(f"PostgreSQL at {where} is unavailable: {said}", cause="other")
    return StoreError(f"PostgreSQL at {where} failed: {said}", cause="other")


def _is_pool_timeout(exc: BaseException) -> bool:
    from psycopg_pool import PoolTimeout

    return isinstance(exc, PoolTimeout)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[:2]).strip()
    return text.replace("connection failed: ", "") or type(exc).__name__
