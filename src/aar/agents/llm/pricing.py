"""Token accounting: usage per call, a versioned price table (``prices.json``) and budget ledgers.

A :class:`Ledger` holds what an agent (or the whole campaign) has spent and what its calls in flight
may still spend. Before each model call the loop *reserves* the call's worst case (estimated prompt
plus the full output allowance); after it, the reservation is *settled* with the real usage. A call
that does not fit what is left of a budget, counting every reservation of every agent sharing the
parent ledger, is never made.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.json")


@dataclass
class Usage:
    """Tokens of one call or a sum of calls. ``input`` excludes cache reads and writes."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def total(self) -> int:
        """Every token billed: uncached input, cache reads and writes, and output."""
        return self.input + self.output + self.cache_read + self.cache_write

    @property
    def prompt(self) -> int:
        """The size of the prompt the model saw (uncached + cached + newly cached)."""
        return self.input + self.cache_read + self.cache_write

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (with the total)."""
        return {**asdict(self), "total": self.total}

    @classmethod
    def of(cls, d: dict[str, Any] | None) -> Usage:
        """From :meth:`to_dict` output (missing fields are zero)."""
        d = d or {}
        return cls(*(int(d.get(k, 0) or 0) for k in ("input", "output", "cache_read", "cache_write")))


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    def cost(self, u: Usage) -> float:
        """Dollars for ``u``."""
        return (
            u.input * self.input
            + u.output * self.output
            + u.cache_read * self.cache_read
            + u.cache_write * self.cache_write
        ) / 1e6

    def worst_case(self, prompt_tokens: int, output_tokens: int) -> float:
        """The most a call with this prompt and output allowance can cost (prompt billed at the dearer of
        input and cache write)."""
        return (prompt_tokens * max(self.input, self.cache_write) + output_tokens * self.output) / 1e6


class PriceError(ValueError):
    """A price table is malformed, or a model it needs is not in it."""


@dataclass(frozen=True)
class PriceTable:
    """A versioned table of model prices (see ``prices.json``)."""

    version: str
    models: dict[str, Price]
    source: str = ""

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The shipped table, or the one at ``path``."""
        p = Path(path) if path else PRICES_FILE
        try:
            raw = json.loads(p.read_text())
            models = {
                name: Price(**{k: float(v[k]) for k in Price.__dataclass_fields__})
                for name, v in raw["models"].items()
            }
            return cls(str(raw["version"]), models, str(p))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PriceError(f"price table {p} is not usable: {e}") from e

    def entry_for(self, model: str) -> str | None:
        """Which table entry prices ``model``: the exact name; else an entry of which ``model`` is a dated
        snapshot or alias (``-20250929``, ``-2024-08-06``, ``-latest``, ``@...``, ``:...``);
        else an entry ending in ``/`` that prefixes it (``local/``). A newer model of a family is never
        priced as an older one."""
        if model in self.models:
            return model
        for k in sorted(self.models, key=len, reverse=True):
            rest = model[len(k) :] if model.startswith(k) else None
            if rest is None:
                continue
            if k.endswith("/") or re.fullmatch(r"-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|[@:].*", rest):
                return k
        return None

    def price(self, model: str) -> Price | None:
        """Price of ``model`` (see :meth:`entry_for`), or None when the table does not have it."""
        k = self.entry_for(model)
        return self.models[k] if k is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The table as saved with a run."""
        return {
            "version": self.version,
            "source": self.source,
            "models": {k: asdict(v) for k, v in self.models.items()},
        }


class BudgetExhausted(RuntimeError):
    """A call would not fit what is left of a token or dollar budget."""


@dataclass
class Reservation:
    tokens: int
    dollars: float
    chain: tuple[Ledger, ...]


class Ledger:
    """Spent and reserved tokens and dollars against optional limits; thread-safe; may have a parent
    (an agent's ledger under the campaign's), and every reservation counts against every ancestor."""

    def __init__(
        self,
        max_tokens: int | None = None,
        max_dollars: float | None = None,
        parent: Ledger | None = None,
        name: str = "",
    ) -> None:
        """A ledger with these limits (``None``: unlimited)."""
        self.max_tokens, self.max_dollars, self.parent, self.name = max_tokens, max_dollars, parent, name
        self.tokens, self.dollars = 0, 0.0
        self.reserved_tokens, self.reserved_dollars = 0, 0.0
        self._lock: threading.RLock = parent._lock if parent is not None else threading.RLock()

    def _chain(self) -> tuple[Ledger, ...]:
        out: list[Ledger] = []
        node: Ledger | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return tuple(out)

    def headroom(self) -> tuple[float, float]:
        """(tokens, dollars) still free along the chain after spending and reservations (inf: no limit)."""
        with self._lock:
            tok: float = float("inf")
            usd: float = float("inf")
            for node in self._chain():
                if node.max_tokens is not None:
                    tok = min(tok, node.max_tokens - node.tokens - node.reserved_tokens)
                if node.max_dollars is not None:
                    usd = min(usd, node.max_dollars - node.dollars - node.reserved_dollars)
            return tok, usd

    def limiting(self, kind: str) -> str:
        """Name of the ledger whose ``kind`` ("tokens" or "dollars") budget has the least room left."""
        with self._lock:
            best: Ledger = self
            room: float = float("inf")
            left: float
            for node in self._chain():
                if kind == "tokens" and node.max_tokens is not None:
                    left = node.max_tokens - node.tokens - node.reserved_tokens
                elif kind == "dollars" and node.max_dollars is not None:
                    left = node.max_dollars - node.dollars - node.reserved_dollars
                else:
                    continue
                if left < room:
                    best, room = node, left
            return best.name or "budget"

    def exhausted(self) -> str | None:
        """Which budget is used up (nothing left at all), or None."""
        with self._lock:
            for node in self._chain():
                who = node.name or "budget"
                if node.max_tokens is not None and node.tokens >= node.max_tokens:
                    return f"{who}: token budget spent ({node.tokens} of {node.max_tokens})"
                if node.max_dollars is not None and node.dollars >= node.max_dollars:
                    return f"{who}: dollar budget spent (${node.dollars:.4f} of ${node.max_dollars:.4f})"
            return None

    def reserve(self, tokens: int, dollars: float) -> Reservation:
        """Reserve a call's worst case here and on every ancestor, or raise :class:`BudgetExhausted`."""
        with self._lock:
            for node in self._chain():
                who = node.name or "budget"
                if (
                    node.max_tokens is not None
                    and node.tokens + node.reserved_tokens + tokens > node.max_tokens
                ):
                    raise BudgetExhausted(
                        f"{who}: token budget ({node.tokens} spent, {node.reserved_tokens} in flight, "
                        f"{tokens} more needed, limit {node.max_tokens})"
                    )
                if (
                    node.max_dollars is not None
                    and node.dollars + node.reserved_dollars + dollars > node.max_dollars + 1e-12
                ):
                    raise BudgetExhausted(
                        f"{who}: dollar budget (${node.dollars:.4f} spent, ${node.reserved_dollars:.4f} in "
                        f"flight, ${dollars:.4f} more needed, limit ${node.max_dollars:.4f})"
                    )
            chain = self._chain()
            for node in chain:
                node.reserved_tokens += tokens
                node.reserved_dollars += dollars
            return Reservation(tokens, dollars, chain)

    def settle(self, r: Reservation, tokens: int, dollars: float) -> None:
        """Release ``r`` and record what the call really used."""
        with self._lock:
            for node in r.chain:
                node.reserved_tokens -= r.tokens
                node.reserved_dollars -= r.dollars
                node.tokens += tokens
                node.dollars += dollars

    def add(self, tokens: int, dollars: float, propagate: bool = True) -> None:
        """Record earlier spending (a resumed agent's) on this ledger (and its ancestors if ``propagate``)."""
        with self._lock:
            for node in self._chain() if propagate else (self,):
                node.tokens += tokens
                node.dollars += dollars

    def in_flight(self) -> tuple[int, float]:
        """Tokens and dollars reserved by calls not yet settled."""
        with self._lock:
            return self.reserved_tokens, self.reserved_dollars
