"""An agent cannot regenerate the secret test draw, nor find the final split, from inside its sandbox.

The hostile script (``regen_hostile.py``) runs in a real bubblewrap sandbox that sees only the
exported public view of math-tiny and the installed package. It regenerates the testbed every way
it can: ``make_dataset`` with the shipped spec, build version 1's sequential draw with the spec's
seed and other seeds, guessed salts and a build of its own. Checked outside: (i) none of its ids is
an id of the real test split, (ii) its labels matched by position with the real test examples agree
no more than chance (inside a binomial 99% band, Bonferroni over the attempts, around the agreement
expected from the two label balances), (iii) no input or id of the final split is anywhere in the
view, and no file that looks like the draw salt is visible.

What this does not and cannot prevent: computing the answer from the input text itself (a+b for
math, evaluating the program for code, looking the creature up in the public corpus for chat).
The inputs are public by design; catching a method that does that is the audit's job.

The testbed here is built with a fixed salt so that the statistical check (ii) is deterministic;
real builds draw their salt from :func:`secrets.token_bytes`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from scipy.stats import binom

from aar.sandbox import Limits, SandboxSpec, check_bubblewrap, prepare_workspace, run_sandboxed
from aar.w2s.public import export_public_view
from aar.w2s.testbeds.build import build_testbed
from aar.w2s.testbeds.registry import TESTBEDS, load_testbed

HERE = Path(__file__).parent
UID = 61190  # a uid of its own (the sandbox red-team suite uses 61100-61102)
FIXED_SALT = hashlib.sha256(b"aar regeneration test").digest()


@pytest.fixture(scope="module")
def drawn(aar_home, math_tiny, tmp_path_factory):
    """math-tiny built with the fixed salt (reusing the session's pretrained LMs) and its public view."""
    home = tmp_path_factory.mktemp("regen_home")
    shutil.copytree(aar_home / "pretrained", home / "pretrained")
    build_testbed(TESTBEDS["math-tiny"], home, salt=FIXED_SALT)
    tb = load_testbed("math-tiny", home)
    view = export_public_view(tb, tmp_path_factory.mktemp("regen_view") / "math-tiny", seeds=[0])
    for p in [view, *view.rglob("*")]:  # readable by the sandbox uid
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return tb, view


def test_hostile_regeneration_in_a_sandbox_learns_nothing_of_test_or_final(drawn, tmp_path):
    support = check_bubblewrap(UID)
    if not support.available:
        pytest.skip(f"bubblewrap unavailable here: {support.reason}")
    tb, view = drawn
    ws = prepare_workspace(tmp_path / "agent", UID)
    shutil.copy(HERE / "regen_hostile.py", ws / "regen_hostile.py")
    os.chmod(ws / "regen_hostile.py", 0o644)
    spec = SandboxSpec(
        workspace=ws,
        readonly=[view],
        limits=Limits(memory_mb=2048, cpu_seconds=300, wall_seconds=600, disk_mb=64),
        uid=UID,
        gid=UID,
    )
    res = run_sandboxed([sys.executable, str(ws / "regen_hostile.py"), str(view)], spec)
    assert res.ok, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["secrets_found"] == []

    test = tb.dataset.splits["test"]
    real_ids = {e.id for e in test}
    y = [e.label for e in test]
    p = sum(y) / len(y)
    attempts = out["attempts"]
    assert attempts["make_dataset(spec)"]["ids"] == []  # no salt, no test split
    compared = {k: a for k, a in attempts.items() if a["labels"]}
    assert len(compared) >= 7
    for name, a in attempts.items():
        assert not real_ids & set(a["ids"]), f"{name}: regenerated real test ids"  # (i)
    for name, a in compared.items():  # (ii)
        g = a["labels"][: len(y)]
        n = len(g)
        q = sum(g) / n
        chance = p * q + (1 - p) * (1 - q)
        lo, hi = binom.interval(1 - 0.01 / len(compared), n, chance)
        agree = sum(int(gi == yi) for gi, yi in zip(g, y, strict=False))
        assert lo <= agree <= hi, f"{name}: {agree}/{n} labels agree by position (chance {chance:.3f})"

    # (iii) the final split is nowhere in the view, nor is the salt
    blob = b"".join(f.read_bytes() for f in view.rglob("*") if f.is_file())
    text = blob.decode("utf-8", errors="replace")
    final = tb.dataset.splits["final"]
    assert len(final) == 200
    assert not [e.id for e in final if e.id in text]
    assert not [e.prompt for e in final if json.dumps(e.prompt) in text]
    assert FIXED_SALT not in blob and FIXED_SALT.hex() not in text
