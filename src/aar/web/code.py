"""The code behind a submission: an artifact's files, one file highlighted, a diff of two artifacts.

Artifacts are untrusted bytes. A tarball is read in memory through the same checked reader as
:func:`aar.agents.artifacts.safe_unpack` (no links, no ``..``, size caps) and never written to disk;
anything else is one file. Text is highlighted by Pygments, which escapes it; binary files are only
described. Artifacts are content-addressed, so their parsed files are cached by hash.
"""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from markupsafe import Markup

from aar.agents.artifacts import UnsafeArchive
from aar.agents.artifacts import _members as checked_members  # the vetted in-memory tar reader
from aar.server.artifacts import blob_path
from aar.server.errors import ApiError

MAX_SHOWN_BYTES = 200_000  # larger files are cut there before highlighting
MAX_DIFF_CHARS = 400_000  # larger pairs of files are named, not diffed (difflib is superlinear)
MAX_DIFF_LINES = 4_000


@dataclass(frozen=True)
class CodeFile:
    """One file of an artifact: its path, size and text (None when binary)."""

    path: str
    size: int
    text: str | None


class _Cache:
    """Parsed artifacts, least recently used first out, bounded in entries and in bytes (agents choose
    what they upload: a few large tarballs must not fill the server's memory)."""

    def __init__(self, entries: int = 64, max_bytes: int = 128 * 2**20) -> None:
        self.entries, self.max_bytes = entries, max_bytes
        self._items: OrderedDict[str, tuple[int, list[Any]]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> list[Any] | None:
        """The cached value, or None."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][1]
        return None

    def put(self, key: str, value: list[Any], size: int) -> None:
        """Remember a value of ``size`` bytes (not at all when larger than the whole cache)."""
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= old[0] if old else 0
            self._items[key] = (size, value)
            self._bytes += size
            while len(self._items) > self.entries or self._bytes > self.max_bytes:
                self._bytes -= self._items.popitem(last=False)[1][0]


_FILES = _Cache()


def _text(data: bytes) -> str | None:
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def artifact_files(data_dir: Path, sha256: str, name: str) -> list[CodeFile]:
    """The files of a stored artifact (a tarball's members, else the blob itself named ``name``)."""
    cached = _FILES.get(sha256)
    if cached is not None:
        return cached
    try:
        data = blob_path(data_dir, sha256).read_bytes()
    except OSError as e:
        raise ApiError(
            503, "artifact_unavailable", f"the bytes of artifact {sha256[:12]} are unreadable: {e}"
        ) from None
    try:
        members = [
            ("/".join(parts), content) for parts, content in checked_members(data) if content is not None
        ]
    except UnsafeArchive:
        members = [(name, data)]
    files = sorted((CodeFile(p, len(c), _text(c)) for p, c in members), key=lambda f: f.path)
    _FILES.put(sha256, files, sum(f.size for f in files))
    return files


def tree(files: list[CodeFile]) -> list[dict[str, Any]]:
    """The file list as rows of a tree: ``{"path", "name", "depth", "dir"}`` with folders first."""
    rows, seen = [], set()
    for f in files:
        parts = f.path.split("/")
        for depth in range(len(parts) - 1):
            folder = "/".join(parts[: depth + 1])
            if folder not in seen:
                seen.add(folder)
                rows.append({"path": folder, "name": parts[depth] + "/", "depth": depth, "dir": True})
        rows.append(
            {"path": f.path, "name": parts[-1], "depth": len(parts) - 1, "dir": False, "size": f.size}
        )
    return rows


def highlight(path: str, text: str) -> Markup:
    """Syntax-highlighted HTML of a file (Pygments escapes the text; classes only, no inline style)."""
    from pygments import highlight as pyg_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, guess_lexer_for_filename
    from pygments.util import ClassNotFound

    if len(text) > MAX_SHOWN_BYTES:
        text = text[:MAX_SHOWN_BYTES] + "\n... (truncated)\n"
    try:
        lexer = guess_lexer_for_filename(path, text, stripnl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False)
    formatter = HtmlFormatter(cssclass="hl", linenos="table", nobackground=True)
    return Markup(pyg_highlight(text, lexer, formatter))


def pygments_css() -> str:
    """The stylesheet of the highlighted code (served as a static file)."""
    from pygments.formatters import HtmlFormatter

    return cast(str, HtmlFormatter(style="friendly", nobackground=True).get_style_defs(".hl"))


def diff(old: list[CodeFile], new: list[CodeFile]) -> list[tuple[str, str]]:
    """A unified diff of two artifacts' text files, as ``(css class, line)`` rows."""
    a = {f.path: f for f in old}
    b = {f.path: f for f in new}
    rows: list[tuple[str, str]] = []
    for path in sorted(set(a) | set(b)):
        fa, fb = a.get(path), b.get(path)
        ta = "" if fa is None else fa.text
        tb = "" if fb is None else fb.text
        if ta is None or tb is None:
            if (fa and fa.size) != (fb and fb.size):
                rows.append(("meta", f"binary file {path} differs"))
            continue
        if ta == tb:
            continue
        if len(ta) + len(tb) > MAX_DIFF_CHARS:
            rows.append(("meta", f"{path} differs (too large to diff here)"))
            continue
        lines = difflib.unified_diff(
            ta.splitlines(),
            tb.splitlines(),
            "/dev/null" if fa is None else f"a/{path}",
            "/dev/null" if fb is None else f"b/{path}",
            lineterm="",
            n=3,
        )
        for line in lines:
            if len(rows) >= MAX_DIFF_LINES:
                rows.append(("meta", "... (diff truncated)"))
                return rows
            kind = (
                "meta"
                if line.startswith(("---", "+++"))
                else "hunk"
                if line.startswith("@@")
                else "add"
                if line.startswith("+")
                else "del"
                if line.startswith("-")
                else "ctx"
            )
            rows.append((kind, line))
    return rows
