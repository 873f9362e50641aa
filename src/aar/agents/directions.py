"""Starting directions: a short, intentionally open text per agent, plus (for the offline researcher)
a starting region of method space.

The built-in directions live in ``directions.json`` beside this module. Users add their own from a
JSON file (a list of objects shaped like the built-in ones; ``region`` optional) or a text file (one
direction per paragraph, ``name: text``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_REGION = {
    "methods": ["recipe"],
    "seeds": [{"method": "recipe", "params": {}}],
    "knobs": ["soft", "keep", "prior_weight", "aux_alpha", "ensemble"],
}


class DirectionError(ValueError):
    """A directions file is malformed or names an unknown direction."""


@dataclass(frozen=True)
class Direction:
    """A starting direction: its name, the open text an agent reads, and a region of method space."""

    name: str
    text: str
    region: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_REGION))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _parse(items: list[Any], source: str) -> list[Direction]:
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("name") or not item.get("text"):
            raise DirectionError(f"{source}: entry {i} needs 'name' and 'text'")
        region = item.get("region") or dict(DEFAULT_REGION)
        if not isinstance(region, dict) or not isinstance(region.get("seeds", []), list):
            raise DirectionError(f"{source}: entry {i} has a malformed 'region'")
        out.append(Direction(str(item["name"]), str(item["text"]), {**DEFAULT_REGION, **region}))
    return out


def builtin_directions() -> list[Direction]:
    """The shipped starting directions, in a fixed order."""
    text = resources.files("aar.agents").joinpath("directions.json").read_text()
    return _parse(json.loads(text), "directions.json")


def load_directions(path: str | Path) -> list[Direction]:
    """Directions from a file: JSON (list of {name, text, region?}) or text (``name: text`` paragraphs)."""
    p = Path(path)
    try:
        raw = p.read_text()
    except OSError as e:
        raise DirectionError(f"cannot read directions file {p}: {e}") from e
    if p.suffix == ".json":
        try:
            items = json.loads(raw)
        except ValueError as e:
            raise DirectionError(f"{p} is not valid JSON: {e}") from e
        if not isinstance(items, list):
            raise DirectionError(f"{p} must hold a JSON list of directions")
        return _parse(items, str(p))
    items = []
    for block in (b.strip() for b in raw.split("\n\n")):
        if not block:
            continue
        name, sep, text = block.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise DirectionError(f"{p}: each paragraph must read 'name: text'; got {block[:60]!r}")
        items.append({"name": name.strip(), "text": " ".join(text.split())})
    return _parse(items, str(p))


def assign(directions: list[Direction], n_agents: int, same: str | None = None) -> list[Direction]:
    """One direction per agent: round-robin over ``directions``, or all the one named ``same``."""
    if not directions:
        raise DirectionError("no directions to assign")
    if same is not None:
        chosen = [d for d in directions if d.name == same]
        if not chosen:
            known = ", ".join(d.name for d in directions)
            raise DirectionError(f"unknown direction '{same}'; known: {known}")
        return [chosen[0]] * n_agents
    return [directions[i % len(directions)] for i in range(n_agents)]
