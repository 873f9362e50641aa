"""Fixture datasets in the original study's layout (a folder per domain, three JSONL files)."""

from __future__ import annotations

import json
import random
from pathlib import Path

SIZES = {"train_label": 24, "train_unlabel": 64, "test": 48}
_FILLER = ["what", "how", "why", "the", "is", "one", "two", "three", "cat", "dog", "red", "blue", "sum"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_FILLER) for _ in range(n))


def chat_row(rng: random.Random) -> dict:
    """A pairwise row: the better answer says 'good', the worse 'bad'."""
    good, bad = f"good {_words(rng, 2)}", f"bad {_words(rng, 2)}"
    a_better = rng.random() < 0.5
    first, second = (good, bad) if a_better else (bad, good)
    return {
        "prompt": _words(rng, 4),
        "first": first,
        "second": second,
        "label": "A" if a_better else "B",
        "subset": "fixture",
    }


def binary_row(rng: random.Random, i: int) -> dict:
    """A binary row: correct choices start with 'yes', wrong ones with 'no'."""
    ok = rng.random() < 0.5
    return {
        "question": f"is {_words(rng, 3)} correct",
        "choice": f"{'yes' if ok else 'no'} {_words(rng, 2)}",
        "label": ok,
        "subset": "fixture",
        "consistency_id": i // 2,
    }


def write_domain(folder: Path, kind: str, sizes: dict[str, int] = SIZES, seed: int = 0) -> Path:
    """Write ``train_label.jsonl``, ``train_unlabel.jsonl``, ``test.jsonl`` of ``kind`` ('chat' or 'math')."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    i = 0
    for split, n in sizes.items():
        with open(folder / f"{split}.jsonl", "w") as f:
            for _ in range(n):
                row = chat_row(rng) if kind == "chat" else binary_row(rng, i)
                i += 1
                f.write(json.dumps(row) + "\n")
    return folder
