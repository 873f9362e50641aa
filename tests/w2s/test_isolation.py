"""A method file cannot reach labels: not through its context, the process's memory or the testbed cache.

The snooping method below tries what once worked (``ctx.new_strong_model.__self__.dataset`` held every
label: PGR 2.56 on math-tiny), walks ``gc.get_objects()`` for labelled examples and reads every testbed
file under the real ``AAR_HOME`` (whose path it is given, as a perfectly informed attacker). It returns
any label it found, and 0.25 everywhere else: an all-0.25 answer proves it ran and found nothing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from aar.cli import app
from aar.sandbox import check_bubblewrap
from aar.w2s.public import cached_public_view
from aar.w2s.worker import ISOLATION_UID, run_isolated

SNOOP = '''
import gc, glob, json, os
NAME = "snoop"
DESCRIPTION = "tries every known way to labels"
PARAMS = {}
HOME = __HOME__
TESTBED = __TESTBED__


def _labelled(obj, found):
    label = getattr(obj, "label", None)
    if label is not None and isinstance(getattr(obj, "id", None), str):
        found[obj.id] = float(label)


def run(ctx):
    found, tried = {}, []
    owner = getattr(ctx.new_strong_model, "__self__", None)
    tried.append(owner is not None)
    for split in getattr(getattr(owner, "dataset", None), "splits", {}).values():
        for e in split:
            _labelled(e, found)
    from aar.w2s.data import Example

    for obj in gc.get_objects():
        if isinstance(obj, Example):
            _labelled(obj, found)
    for root in (HOME, TESTBED, os.environ.get("AAR_HOME", ""), os.path.expanduser("~/.cache/aar")):
        for f in glob.glob(os.path.join(root, "**", "*.json"), recursive=True):
            try:
                blob = json.load(open(f))
            except Exception:
                continue
            if not isinstance(blob, dict):
                continue
            splits = blob.get("splits")
            for xs in splits.values() if isinstance(splits, dict) else ():
                for e in xs if isinstance(xs, list) else ():
                    if isinstance(e, dict) and e.get("label") is not None:
                        found[e["id"]] = float(e["label"])
            if isinstance(blob.get("labels"), dict):
                found.update({k: float(v) for k, v in blob["labels"].items()})
    return [found.get(e.id, 0.25) for e in ctx.predict_inputs]
'''


def _source(home, testbed) -> str:
    return SNOOP.replace("__HOME__", repr(str(home))).replace("__TESTBED__", repr(str(testbed)))


def _snoop(tmp_path, aar_home, math_tiny):
    f = tmp_path / "snoop.py"
    f.write_text(_source(aar_home, math_tiny.path))
    return f


def test_the_snoop_finds_labels_when_run_in_process_with_the_testbed_loaded(tmp_path, aar_home, math_tiny):
    """Control: in the harness's own process the labelled testbed is in memory and on disk (why method
    files run in a child process)."""
    from aar.w2s.experiment import run_method
    from aar.w2s.methods.registry import load_method_file

    run = run_method(math_tiny, load_method_file(_snoop(tmp_path, aar_home, math_tiny)), seed=0)
    assert any(p != 0.25 for p in run.probs.values())


def test_a_sandboxed_method_file_gets_no_label(tmp_path, aar_home, math_tiny):
    support = check_bubblewrap(ISOLATION_UID)
    if not support.available:
        pytest.skip(f"bubblewrap unavailable: {support.reason}")
    view = cached_public_view(math_tiny, [0])
    res = run_isolated(view.path, str(_snoop(tmp_path, aar_home, math_tiny)), [0], sandbox=True)
    assert res.ok, res.error
    assert res.isolation == "bwrap"
    probs = res.runs[0]["probs"]
    assert set(probs) == {e.id for e in math_tiny.dataset.splits["test"]}
    assert set(probs.values()) == {0.25}


def test_a_method_file_in_a_plain_child_process_finds_no_label_in_memory(tmp_path, math_tiny):
    """Without bubblewrap the child still loads only the view: nothing in its memory holds a label (it
    could read files the user can read; the README says so)."""
    f = tmp_path / "mem.py"
    f.write_text(
        _source(tmp_path / "nothing", tmp_path / "nothing").replace(
            'os.environ.get("AAR_HOME", ""), os.path.expanduser("~/.cache/aar")', ""
        )
    )
    view = cached_public_view(math_tiny, [0])
    res = run_isolated(view.path, str(f), [0], sandbox=False)
    assert res.ok, res.error
    assert res.isolation == "process" and set(res.runs[0]["probs"].values()) == {0.25}


def test_aar_baseline_runs_method_files_isolated(tmp_path, aar_home, math_tiny, monkeypatch):
    if not check_bubblewrap(ISOLATION_UID).available:
        pytest.skip("bubblewrap unavailable")
    monkeypatch.setenv("AAR_HOME", str(aar_home))
    snoop = _snoop(tmp_path, aar_home, math_tiny)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        app,
        ["baseline", "--testbed", "math-tiny", "--methods", str(snoop), "--seeds", "1", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    blob = json.loads(out.read_text())
    r = blob["methods"][str(snoop)]
    assert "bubblewrap" in r["source"]
    # all 0.25: it predicts class 0 everywhere, so its accuracy is the share of negatives
    labels = np.array([e.label for e in math_tiny.dataset.splits["test"]])
    assert r["transfer_acc"]["mean"] == pytest.approx(float(np.mean(labels == 0)))
    assert r["pgr"]["mean"] < 1.0
