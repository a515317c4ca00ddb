"""What a SQLite error means, said in words with what to do: a full disk, a read-only file
system, a file this user may not write, a database locked for too long.

SQLite's own messages ("database or disk is full", "unable to open database file") do not
say which file or what to do, and after some errors SQLite has already rolled the
transaction back, so a naive ROLLBACK hides the real cause behind "cannot rollback - no
transaction is active" (see `SqliteStore._begin`).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from steadyhand.core.errors import StoreError, StoreUnavailable

# SQLite's primary result codes (the low byte of an extended code).
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN = 10, 11, 13, 14
SQLITE_CONSTRAINT, SQLITE_AUTH, SQLITE_NOTADB = 19, 23, 26


def _read_only_fs(path: Path) -> bool:
    folder = path.parent if path.parent.exists() else Path(".")
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _writable(path: Path) -> bool:
    target = path if path.exists() else path.parent
    return os.access(target, os.W_OK)


def store_error(exc: sqlite3.Error, path: Path, busy_timeout: float) -> StoreError:
    """The `StoreError` (or retryable `StoreUnavailable`) that says what `exc` means."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    said = str(exc)
    where = f"the SQLite store {path}"
    if code == SQLITE_FULL or "disk is full" in said:
        return StoreUnavailable(
            f"disk full: the file system holding {where} has no space left ({said}). Free "
            "space there or move the store; steadyhand retries meanwhile and loses nothing "
            "that was committed.",
            cause="disk_full",
        )
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in said:
        return StoreUnavailable(
            f"{where} stayed locked by another writer for longer than {busy_timeout:g}s "
            f"({said}). Another process holds a long write transaction (a backup, a "
            "`sqlite3` shell left open?); steadyhand retries. Use PostgreSQL for many "
            "busy workers.",
            cause="locked",
        )
    if code in (SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_AUTH) or (
        "readonly" in said or "unable to open" in said
    ):
        if _read_only_fs(path):
            return StoreError(
                f"read-only file system: {where} is on a file system mounted read-only "
                f"({said}). Remount it read-write or point --db / STEADYHAND_DB at a "
                "writable place.",
                cause="read_only",
            )
        if not _writable(path):
            return StoreError(
                f"permission denied: this user may not write {where} or its directory "
                f"({said}). Give this user write access to both (SQLite also writes "
                "-wal and -shm files beside it) or point --db elsewhere.",
                cause="permission_denied",
            )
        if code in (SQLITE_READONLY, SQLITE_CANTOPEN):
            return StoreError(
                f"cannot open {where} for writing ({said}). Check that the path names a "
                "file (not a directory) that this user can write.",
                cause="permission_denied",
            )
    if code == SQLITE_IOERR:
        return StoreUnavailable(
            f"I/O error on {where} ({said}). Check the disk and the kernel log; steadyhand "
            "retries.",
            cause="io_error",
        )
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreError(
            f"{where} is damaged or is not a steadyhand SQLite store ({said}). Restore it "
            "from a backup, or point --db at the right file.",
            cause="corrupt",
        )
    if isinstance(exc, sqlite3.ProgrammingError):
        return StoreError(f"SQLite rejected a statement ({said}): a bug; please report it")
    if isinstance(exc, sqlite3.IntegrityError) or code == SQLITE_CONSTRAINT:
        return StoreError(f"SQLite refused the change: {said}", cause="refused")
    return StoreUnavailable(f"{where} is unavailable: {said}", cause="other")
