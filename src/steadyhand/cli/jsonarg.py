"""Reading a JSON value given on the command line: inline, `@file.json`, or `-` for stdin
(`steadyhand start --input`, `steadyhand signal --payload`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from steadyhand.core import jsoncodec
from steadyhand.core.errors import InputError

MAX_BYTES = 10 * 1024 * 1024


def read_json_arg(text: str, option: str) -> Any:
    """The JSON value of `option`: `text` itself, the file after `@`, or stdin for `-`."""
    source = "it"
    if text == "-":
        raw = sys.stdin.read(MAX_BYTES + 1)
        source = "stdin"
    elif text.startswith("@"):
        path = Path(text[1:])
        try:
            with path.open("r", encoding="utf-8") as handle:
                raw = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise InputError(f"{option} {text}: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise InputError(f"{option} {text}: {path} is not UTF-8 text") from None
        source = str(path)
    else:
        raw = text
    if len(raw) > MAX_BYTES:
        raise InputError(f"{option}: {source} is over {MAX_BYTES // 1024 // 1024} MiB")
    try:
        return jsoncodec.loads(raw)
    except jsoncodec.JSONDecodeError as exc:
        hint = "quote it, e.g. '{\"a\": 1}'" if source == "it" else f"check {source}"
        raise InputError(f"{option}: {source} is not valid JSON ({exc}); {hint}") from None
