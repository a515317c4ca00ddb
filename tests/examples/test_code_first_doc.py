"""docs/CODE_FIRST.md is documentation that runs: its Python blocks, in order, in one
namespace (the simulator stands in for a store and workers)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "CODE_FIRST.md"


def test_every_python_block_of_the_code_first_guide_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    namespace: dict[str, object] = {"__name__": "code_first_doc"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["report"].ok  # type: ignore[attr-defined]
