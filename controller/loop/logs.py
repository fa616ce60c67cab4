"""Log lines for the long-running controller: plain text by default, one JSON object per line on request.

Place in the flow: beside the loop. The reconciler and the loop call `log(line, **fields)` with the
environment, model, version, commit and workflow wherever they apply; text prints the line, json
prints {"time", "level", "msg", ...fields} so a log pipeline can index by model or workflow.
Secrets never reach a log line: callers pass names and digests, never tokens or credentials.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from controller.errors import redact

FORMATS = ("text", "json")
MAX_LINE = 2000  # no input can make a log line large


class Logger:
    """A Log (controller/loop/reconciler.py) that writes to a stream, thread-safe."""

    def __init__(
        self, fmt: str = "text", stream: IO[str] | None = None, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.format = fmt
        self.stream = stream
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()

    def __call__(self, line: str, **fields: Any) -> None:
        level = "error" if line.startswith("error") else str(fields.pop("level", "info"))
        line = redact(line)  # a URL with credentials in someone's error never reaches a log
        line = line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
        if self.format == "json":
            record = {"time": self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"), "level": level}
            record["msg"] = line
            record.update({k: v for k, v in fields.items() if v is not None and v != ""})
            text = json.dumps(record, ensure_ascii=False, default=str)
        else:
            text = line
        with self._lock:
            stream = self.stream or sys.stderr
            stream.write(text + "\n")
            stream.flush()
