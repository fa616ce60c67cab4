"""`reconcile -v`'s step lines (controller/app/steptail.py): new complete lines only, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.app.steptail import StepTail


def test_only_lines_written_after_the_start_and_only_complete_ones(tmp_path: Path) -> None:
    old = tmp_path / "rc-old" / "events.log"
    old.parent.mkdir()
    old.write_text("2026-12-01T10:00:00.000+00:00 rc-old: Succeeded in 1.00s\n")
    told: list[tuple[str, dict[str, Any]]] = []
    tail = StepTail(tmp_path, lambda line, **fields: told.append((line, fields)))
    assert tail.poll() == 0  # what earlier controllers saw is not news
    new = tmp_path / "rc-new" / "events.log"
    new.parent.mkdir()
    with new.open("a") as f:
        f.write("2026-12-01T10:00:01.000+00:00 rc-new/train: started (attempt 1)\n2026-12-01T10:00:02.000+00:00 rc-n")
    assert tail.poll() == 1
    with new.open("a") as f:
        f.write("ew/train: Succeeded in 1.00s\n")
    with old.open("a") as f:
        f.write("2026-12-01T10:00:03.000+00:00 rc-old/deploy: started (attempt 2)\n")
    assert tail.poll() == 2 and tail.poll() == 0
    assert told == [
        ("step rc-new/train: started (attempt 1)", {"workflow": "rc-new"}),
        ("step rc-new/train: Succeeded in 1.00s", {"workflow": "rc-new"}),
        ("step rc-old/deploy: started (attempt 2)", {"workflow": "rc-old"}),
    ]
