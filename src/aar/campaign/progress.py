"""Live progress of a campaign: agents, best public PGR, submissions, elapsed and remaining budget.

Only public (Ladder-released) figures are shown while the campaign runs; private figures appear in
the final report. On a terminal the table refreshes in place; otherwise a line is printed every
``every`` seconds.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table


def _fmt_s(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 60}:{s % 60:02d}"


class Progress:
    """Renders snapshots: ``{"elapsed", "remaining", "submissions", "best_pgr", "agents": [...]}``."""

    def __init__(self, title: str, live: bool | None = None, every: float = 30.0) -> None:
        """A display titled ``title``; ``live`` defaults to whether stdout is a terminal."""
        self.title, self.every = title, every
        self.live_mode = sys.stdout.isatty() if live is None else live
        self._live: Live | None = None
        self._last = 0.0

    def __enter__(self) -> Progress:
        if self.live_mode:
            from rich.live import Live

            live = Live(refresh_per_second=2, transient=False)
            live.__enter__()
            self._live = live
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def table(self, snap: dict[str, Any]) -> Table:
        """A rich table of the snapshot."""
        from rich.table import Table

        best = "-" if snap["best_pgr"] is None else f"{snap['best_pgr']:.3f}"
        t = Table(
            title=f"{self.title}  best public PGR {best}  submissions {snap['submissions']}  "
            f"elapsed {_fmt_s(snap['elapsed'])}  remaining {_fmt_s(snap['remaining'])}"
        )
        for col in ("agent", "direction", "status", "time used", "subs", "public PGR", "method"):
            t.add_column(col)
        for a in snap["agents"]:
            pgr = "-" if a["pgr"] is None else f"{a['pgr']:.3f}"
            t.add_row(
                a["name"],
                a["direction"],
                a["status"],
                f"{_fmt_s(a['seconds'])}/{_fmt_s(a['budget'])}",
                str(a["submissions"]),
                pgr,
                a.get("method") or "",
            )
        return t

    def update(self, snap: dict[str, Any]) -> None:
        """Show a snapshot (throttled when not on a terminal)."""
        if self._live is not None:
            self._live.update(self.table(snap))
            return
        now = time.monotonic()
        if now - self._last < self.every and not snap.get("final"):
            return
        self._last = now
        best = "-" if snap["best_pgr"] is None else f"{snap['best_pgr']:.3f}"
        running = sum(a["status"] == "running" for a in snap["agents"])
        line = (
            f"[{_fmt_s(snap['elapsed'])}] agents running {running}/{len(snap['agents'])}, submissions "
            f"{snap['submissions']}, best public PGR {best}, remaining {_fmt_s(snap['remaining'])}"
        )
        print(line, flush=True)
