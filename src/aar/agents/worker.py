"""Runs one experiment (a method over seeds) on an agent's public view: ``python -m aar.agents.worker REQ``.

``REQ`` is a JSON file with ``view``, ``method`` (a shipped name or a ``.py`` path), ``params``,
``seeds``, ``splits`` and ``out_dir``. Each seed's predictions are written to ``out_dir/s<seed>.json``
as soon as they exist; errors go to ``out_dir/error.txt``. Started by
:class:`aar.agents.experiments.ExperimentRunner` in its own process group, under a timeout.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(request_path: str) -> int:
    """Run the request; exit 0 on success, 1 on a method error."""
    import torch

    torch.set_num_threads(1)
    from aar.w2s.data import write_json_atomic
    from aar.w2s.experiment import run_method
    from aar.w2s.methods.registry import get_method
    from aar.w2s.public import load_public_view

    req = json.loads(Path(request_path).read_text())
    out = Path(req["out_dir"])
    try:
        view = load_public_view(Path(req["view"]))
        method = get_method(req["method"])
        for seed in req["seeds"]:
            run = run_method(view, method, int(seed), req.get("params") or {}, tuple(req["splits"]))
            write_json_atomic(
                out / f"s{seed}.json",
                {"seed": seed, "params": run.params, "seconds": run.seconds, "probs": run.probs},
            )
    except Exception as e:
        (out / "error.txt").write_text(f"{type(e).__name__}: {e}\n\n{traceback.format_exc()[-3000:]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
