"""The paired Ladder (default) and the server-side halves secret."""

from __future__ import annotations

import multiprocessing
import stat
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from aar.server.scoring import (
    default_margin,
    ladder_step,
    paired_grid,
    paired_ladder_step,
    paired_threshold,
)
from aar.server.vault import build_arrays, halves_key, public_mask

from .helpers import halves_of, labels_of, make_bundle

KEY = bytes(range(32))


def _arrays(n: int, seed: int):
    return build_arrays(make_bundle(n=n, seed=seed), KEY)


def _with_public_accuracy(arrays, acc: float, rng: np.random.Generator) -> np.ndarray:
    """0/1 predictions wrong on exactly round((1 - acc) * n_public) public examples (and as many on
    the private half)."""
    probs = arrays.labels.astype(np.float64).copy()
    for mask in (arrays.public, ~arrays.public):
        where = np.flatnonzero(mask)
        wrong = rng.choice(where, size=round((1 - acc) * where.size), replace=False)
        probs[wrong] = 1.0 - probs[wrong]
    return probs


def test_small_changes_never_move_the_paired_ladder():
    """Whatever the base and the labels: up to four changed predictions never release a new figure."""
    arrays = _arrays(400, 31)
    rng = np.random.default_rng(0)
    n = len(arrays.ids)
    for trial in range(300):
        base = rng.integers(0, 2, n).astype(np.float64)
        released, moved = paired_ladder_step(arrays, base, None, None)
        assert moved and released == pytest.approx(round(released / 0.01) * 0.01)
        k = 1 + trial % 4
        flip = rng.choice(n, size=k, replace=False)
        probe = base.copy()
        probe[flip] = 1.0 - probe[flip]
        assert paired_ladder_step(arrays, probe, released, base) == (released, False)
    # the threshold itself: one flip (mean 1/n) is below both parts
    d = np.zeros(200)
    d[0] = 1.0
    assert paired_threshold(d) >= 4 / 200 > d.mean()


def test_real_improvement_of_three_points_on_1000_public_examples_is_released():
    """A gain of 0.03 accuracy on 1,000 public examples: the paired Ladder releases it (to 0.01),
    the fixed-margin Ladder (margin 1/sqrt(1000) = 0.032) does not."""
    arrays = _arrays(2000, 32)
    assert int(arrays.public.sum()) == 1000 and paired_grid(1000) == 0.01
    rng = np.random.default_rng(1)
    base = _with_public_accuracy(arrays, 0.80, rng)
    released, _ = paired_ladder_step(arrays, base, None, None)
    assert released == pytest.approx(0.80)
    # fix 40 public errors and break 10 right answers: +0.03, predictions differ on 50 examples
    pub = np.flatnonzero(arrays.public)
    wrong = pub[(base[pub] > 0.5) != arrays.labels[pub]]
    right = pub[(base[pub] > 0.5) == arrays.labels[pub]]
    better = base.copy()
    for idx in (rng.choice(wrong, 40, replace=False), rng.choice(right, 10, replace=False)):
        better[idx] = 1.0 - better[idx]
    new, moved = paired_ladder_step(arrays, better, released, base)
    assert moved and new == pytest.approx(0.83)
    assert ladder_step(0.80, 0.83, default_margin(1000)) == (0.80, False)
    # a re-run that differs on 20% of the examples with the same +0.03 net gain is released too
    other = base.copy()
    flip_w = rng.choice(wrong, 115, replace=False)
    flip_r = rng.choice(right, 85, replace=False)
    other[flip_w] = 1.0 - other[flip_w]
    other[flip_r] = 1.0 - other[flip_r]
    assert paired_ladder_step(arrays, other, released, base)[1]
    # noise of the same size does not: half the changes right, half wrong
    noise = base.copy()
    for idx in (rng.choice(wrong, 25, replace=False), rng.choice(right, 25, replace=False)):
        noise[idx] = 1.0 - noise[idx]
    assert paired_ladder_step(arrays, noise, released, base) == (released, False)


def test_paired_ladder_over_http_releases_on_the_grid(harness):
    bundle = harness.testbed(n=400, seed=33)
    agent, _ = harness.agent()
    sha = harness.code(agent)
    truth = labels_of(bundle)
    halves = halves_of(harness.srv.settings.data_dir, bundle)
    pub = sorted(k for k in truth if halves[k] == "public")
    base = {k: float(truth[k]) for k in truth}
    for k in pub[:60]:  # 0.70 on the public half
        base[k] = 1.0 - base[k]
    first = agent.submit(bundle.testbed_id, base, sha)
    assert first.public.improved and first.public.accuracy == pytest.approx(0.70)
    assert first.public.margin == 0.01  # the grid, not the data-dependent threshold
    better = {**base, **{k: float(truth[k]) for k in pub[:20]}}  # +0.10 on the public half
    second = agent.submit(bundle.testbed_id, better, sha)
    assert second.public.improved and second.public.accuracy == pytest.approx(0.80)
    # as another worker (or a restarted server) would: the best's correctness is read from the database
    harness.srv.server.config.app.state.ctx.vault.best_correct._items.clear()
    same = agent.submit(bundle.testbed_id, {**better, pub[0]: base[pub[0]]}, sha)  # one flip back
    assert (same.public.improved, same.public.accuracy) == (False, second.public.accuracy)
    best = agent.submit(bundle.testbed_id, {k: float(v) for k, v in truth.items()}, sha)
    assert best.public.improved and best.public.accuracy == 1.0


def test_halves_key_is_secret_stable_and_race_safe(tmp_path):
    key = halves_key(tmp_path)
    path = tmp_path / "halves_key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert halves_key(tmp_path) == key  # read back, never remade
    fresh = tmp_path / "race"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: halves_key(fresh), range(32)))
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as procs:
        keys |= set(procs.map(halves_key, [tmp_path / "race"] * 8))
    assert len(keys) == 1
    assert [p.name for p in fresh.iterdir()] == ["halves_key"]  # no temp file left behind


def test_halves_depend_on_the_key_only_through_the_hmac():
    bundle = make_bundle(n=300, seed=34)
    ids = sorted(bundle.labels)
    a = public_mask(KEY, bundle.testbed_id, ids)
    b = public_mask(bytes(32), bundle.testbed_id, ids)
    assert a.sum() == b.sum() == 150
    assert 0.3 < np.mean(a == b) < 0.7  # another key: an unrelated split
    assert np.array_equal(a, public_mask(KEY, bundle.testbed_id, ids))
    arrays = build_arrays(bundle, KEY)
    assert np.array_equal(arrays.public, a)
    assert arrays.final_ids == sorted(bundle.final_labels) and arrays.weak_final < arrays.ceiling_final


def test_missing_vault_file_is_a_clear_error(tmp_path):
    """A testbed row whose bundle is not in this data dir (a database shared with another data dir)."""
    from aar.server.db import Database, migrate
    from aar.server.errors import ApiError
    from aar.server.vault import VaultCache, register

    url = f"sqlite:///{tmp_path / 'a.db'}"
    migrate(url)
    db = Database(url)
    try:
        bundle = make_bundle(n=60, seed=35)
        register(db, tmp_path / "one", bundle)
        assert VaultCache(db, tmp_path / "one").get(bundle.testbed_id).final_ids
        with pytest.raises(ApiError) as e:
            VaultCache(db, tmp_path / "other").get(bundle.testbed_id)
        assert e.value.status == 503 and e.value.code == "vault_unavailable"
    finally:
        db.dispose()


def test_fixed_ladder_stays_available(tmp_path):
    """``ladder="fixed"``: the margin is 1/sqrt(n_public) and releases sit on its grid."""
    from .conftest import settings_for
    from .helpers import ServerThread

    srv = ServerThread(settings_for(tmp_path, None, ladder="fixed")).start()
    try:
        admin = srv.client()
        bundle = make_bundle(n=400, seed=36)
        admin.register_testbed(bundle)
        agent = srv.client(admin.create_agent("fixed-ladder").token)
        sha = agent.upload_artifact(b"m").sha256
        truth = labels_of(bundle)
        halves = halves_of(tmp_path, bundle)
        pub = sorted(k for k in truth if halves[k] == "public")
        base = {k: float(truth[k]) for k in truth}
        for k in pub[:60]:
            base[k] = 1.0 - base[k]
        first = agent.submit(bundle.testbed_id, base, sha)
        margin = 1 / np.sqrt(200)
        assert first.public.margin == pytest.approx(margin)
        steps = (1 - first.public.accuracy) / margin
        assert abs(steps - round(steps)) < 1e-9
        small = agent.submit(bundle.testbed_id, {**base, **{k: float(truth[k]) for k in pub[:10]}}, sha)
        assert not small.public.improved  # +0.05 < margin 0.071
        agent.close()
        admin.close()
    finally:
        srv.stop()
