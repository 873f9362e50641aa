"""Where an agent's wall time goes: spans of its time by kind, appended to ``timing.jsonl`` in its workspace.

The agent process calls :func:`configure` once with its workspace; from then on the tools, the
experiment runner, the researcher and the LLM loops wrap what they do in :func:`span` (or report a
duration measured elsewhere with :func:`record`). Each finished span is one JSON line, written and
flushed at once (a killed agent loses at most the span it was in)::

    {"kind": "server", "start": 1767000000.1, "end": 1767000000.3, "seconds": 0.2}

Spans nest and are *exclusive*: the seconds of a span leave out the spans inside it, so the seconds of
every kind add up to at most the agent's wall time. An experiment is a span of ``experiment_overhead``
(starting the worker, waiting for it, reading its results) around a :func:`record` of ``experiment``
(the seconds the worker measured around the method itself). Kinds (:data:`KINDS`):

- ``experiment``: inside the method run (training and prediction), measured by the experiment worker;
- ``experiment_overhead``: the rest of an experiment (worker start, imports, loading the view, waiting,
  reading results, killing a runaway group);
- ``model``: LLM calls (LLM backends); ``server``: calls to the scoring server;
- ``diagnostics``: label-free diagnostics of runs; ``notes``: writing the researcher's notes;
- ``agent_start``: from the agent process's start to its first span (imports, config, connection).

:func:`summarize` adds the seconds up per kind for a workspace; it is what benchmarks import.
Without :func:`configure` (tests, the operator's own tools) spans cost a clock read and write nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TIMING_FILE = "timing.jsonl"
KINDS = (
    "agent_start",
    "experiment",
    "experiment_overhead",
    "model",
    "server",
    "diagnostics",
    "notes",
)


class _Frame:
    """An open span: where it started and how many seconds its inner spans took."""

    __slots__ = ("inner", "kind", "start")

    def __init__(self, kind: str, start: float) -> None:
        self.kind, self.start, self.inner = kind, start, 0.0


class Timing:
    """The span recorder of one agent: appends to ``path`` (None: records nothing)."""

    def __init__(self, path: Path | None = None, started_at: float | None = None) -> None:
        """Record into ``path``; ``started_at`` (epoch seconds of the process start) makes the first span
        also record an ``agent_start`` span from then to its own start."""
        self.path = path
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._started_at = started_at

    def _stack(self) -> list[_Frame]:
        stack: list[_Frame] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _write(self, kind: str, start: float, end: float, seconds: float) -> None:
        if self.path is None:
            return
        line = json.dumps(
            {
                "kind": kind,
                "start": round(start, 4),
                "end": round(end, 4),
                "seconds": round(max(0.0, seconds), 4),
            }
        )
        with self._lock:
            try:
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
                    if _torn(self.path):  # a kill mid-write left half a line: end it first
                        self._file.write("\n")
                self._file.write(line + "\n")
                self._file.flush()
            except OSError:  # a full disk or a file taken away: measuring must never stop the agent
                self.path = None

    def _first(self, now: float) -> None:
        if self._started_at is not None:
            started, self._started_at = self._started_at, None
            self._write("agent_start", started, now, now - started)

    @contextlib.contextmanager
    def span(self, kind: str) -> Iterator[None]:
        """Time the block as ``kind`` (less the spans inside it); written when the block ends, even by an
        exception."""
        if not kind:
            raise ValueError("a span needs a kind")
        start = time.time()
        self._first(start)
        stack = self._stack()
        frame = _Frame(kind, start)
        stack.append(frame)
        try:
            yield
        finally:
            end = time.time()
            stack.pop()
            if stack:
                stack[-1].inner += end - start
            self._write(kind, start, end, end - start - frame.inner)

    def record(self, kind: str, seconds: float) -> None:
        """A span of ``seconds`` measured elsewhere (e.g. by the experiment worker), ending now; it counts
        as inside the enclosing span, whose own seconds shrink by as much."""
        if not kind:
            raise ValueError("a span needs a kind")
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        end = time.time()
        self._first(end - seconds)
        stack = self._stack()
        if stack:
            stack[-1].inner += seconds
        self._write(kind, end - seconds, end, seconds)

    def close(self) -> None:
        """Close the file (spans after this reopen it)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _torn(path: Path) -> bool:
    """Whether ``path`` ends without a newline (the last write was cut short)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False


_current = Timing()


def configure(workspace: Path, started_at: float | None = None) -> Timing:
    """Record this process's spans into ``workspace/timing.jsonl`` from now on (appending: a resumed agent
    adds to its earlier spans). ``started_at``: the process's start (see :func:`process_start_time`)."""
    global _current
    if not Path(workspace).is_dir():
        raise ValueError(f"workspace {workspace} is not a folder")
    _current.close()
    _current = Timing(Path(workspace) / TIMING_FILE, started_at)
    return _current


def span(kind: str) -> contextlib.AbstractContextManager[None]:
    """Time a block of this process's work as ``kind`` (see :meth:`Timing.span`)."""
    return _current.span(kind)


def record(kind: str, seconds: float) -> None:
    """Record ``seconds`` of ``kind`` measured elsewhere, ending now (see :meth:`Timing.record`)."""
    _current.record(kind, seconds)


def process_start_time() -> float | None:
    """Epoch seconds at which this process started (Linux ``/proc``), or None where that is unknown.

    The start is read in clock ticks after boot and set against the boot clock now (both to 10 ms;
    ``btime`` of ``/proc/stat`` is only to the second)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat(5): start time in clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - max(0.0, age)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def read_spans(workspace: Path) -> list[dict[str, float | str]]:
    """Every span recorded in ``workspace`` (a torn last line, from a kill mid-write, is skipped)."""
    path = Path(workspace) / TIMING_FILE
    if not Path(workspace).is_dir():
        raise ValueError(f"workspace {workspace} is not a folder")
    spans: list[dict[str, float | str]] = []
    if not path.exists():
        return spans
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            s = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(s, dict)
            and isinstance(s.get("kind"), str)
            and isinstance(s.get("seconds"), (int, float))
        ):
            spans.append(s)
    return spans


def summarize(workspace: Path, *more: Path) -> dict[str, float]:
    """Seconds per kind over every span recorded in ``workspace`` (every kind of :data:`KINDS` present,
    0.0 when none was recorded; other kinds as found), and in the folders ``more`` (an LLM agent's
    model calls are timed outside its workspace, in the loop's store)."""
    out = dict.fromkeys(KINDS, 0.0)
    for s in [s for folder in (workspace, *more) for s in read_spans(folder)]:
        kind = str(s["kind"])
        out[kind] = out.get(kind, 0.0) + float(s["seconds"])
    return {k: round(v, 3) for k, v in out.items()}
