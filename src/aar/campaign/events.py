"""The campaign's sandbox audit trail: ``DIR/sandbox_events.jsonl``, one JSON object per line.

The campaign hands :class:`AuditLog` to its launcher as the ``audit=`` callback of
:mod:`aar.sandbox`, so every agent sandbox's ``sandbox.start`` (uid, mounts, limits),
``sandbox.limit`` (the breached budget, measured value and limit) and ``sandbox.exit`` (return
code, kill reason, peaks) land here, with the campaign's own ``campaign.session`` events. The file
lives in the campaign directory, owned by the supervisor, mode 600, outside every agent's
workspace (agents cannot see or edit it); lines are appended with ``O_APPEND`` under a lock, so
events from the watchdog threads of several sandboxes never interleave.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

AUDIT_FILE = "sandbox_events.jsonl"


class AuditLog:
    """Callable sink: ``audit(record)`` appends ``record`` (plus ``ts``) as one JSON line."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        line = json.dumps({"ts": time.time(), **record}, default=str, sort_keys=True) + "\n"
        with self._lock:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self.path, flags, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

    def events(self) -> list[dict[str, Any]]:
        """Every event written so far (for reports and tests)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
