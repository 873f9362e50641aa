"""The server's ground-truth bundle of a testbed, and (re-exported) its agent-visible view.

The *vault bundle* (labels of test and final, reference predictions) goes to the scoring server only.
The public view an agent sees is built in :mod:`aar.w2s.view`; its names are importable from here too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace

from aar.w2s.cache import CacheError, key_of
from aar.w2s.data import Dataset, Example, labels_of
from aar.w2s.experiment import run_method
from aar.w2s.methods.registry import get_method
from aar.w2s.references import ceiling_probs, teacher_outputs
from aar.w2s.testbeds.protocol import LabelledTestbed
from aar.w2s.vault import BUNDLE_FORMAT, VaultBundle
from aar.w2s.view import (
    VIEW_VERSION,
    VISIBLE_SPLITS,
    PublicTestbed,
    StrongModelLoader,
    cached_public_view,
    export_public_view,
    load_public_view,
    protocol_teacher_on_test,
    with_teacher_on_test,
)

__all__ = [
    "VIEW_VERSION",
    "VISIBLE_SPLITS",
    "PublicTestbed",
    "StrongModelLoader",
    "build_vault_bundle",
    "cached_public_view",
    "export_public_view",
    "load_public_view",
    "protocol_teacher_on_test",
    "with_teacher_on_test",
]


def build_vault_bundle(
    testbed: LabelledTestbed,
    seeds: Sequence[int],
    baselines: Sequence[str] = (),
    on_progress: Callable[[str], None] | None = None,
) -> VaultBundle:
    """The server's bundle (format 2): labels of test and final, reference predictions on both per seed.

    References are the weak teacher, the ceiling and each shipped baseline in ``baselines``, one
    ``{id: P(label=1)}`` per seed covering the test and final ids; ``teacher_on_test`` records the
    protocol (the spec's option, False where it has none). There are no halves: the server assigns
    them under its own key. Cached in the testbed folder, keyed by seeds, baselines, protocol and a
    digest of the test and final ids (a new draw makes a new bundle).
    """
    say = on_progress or (lambda _m: None)
    test: list[Example] = testbed.dataset.splits["test"]
    final: list[Example] = testbed.dataset.splits.get("final", [])
    ids = [e.id for e in (*test, *final)]
    on_test = testbed.teacher_on_test
    key = key_of(
        {
            "seeds": list(seeds),
            "baselines": list(baselines),
            "format": BUNDLE_FORMAT,
            "teacher_on_test": on_test,
            "ids": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest(),
        }
    )
    cache = testbed.path / f"vault-{key}.json"
    if cache.exists():
        try:
            return VaultBundle.load(cache)
        except ValueError as e:
            raise CacheError(f"corrupt vault bundle {cache}: {e}; delete it to rebuild") from e
    refs: dict[str, list[dict[str, float]]] = {"weak": [], "ceiling": []}
    for seed in seeds:
        say(f"seed {seed}: weak teacher and ceiling")
        t = teacher_outputs(testbed, seed).probs
        refs["weak"].append({i: t[i] for i in ids})
        c = ceiling_probs(testbed, seed)
        refs["ceiling"].append({i: c[i] for i in ids})
    # one run per baseline and seed predicts test and final together (methods predict each input on
    # its own): final inputs stand in the test split of an operator-side copy, never of an exported view
    scored = testbed
    if final:
        merged = {**testbed.dataset.splits, "test": [*test, *final], "final": []}
        scored = replace(testbed, dataset=Dataset(testbed.dataset.name, merged))
    for name in baselines:
        refs[name] = []
        for seed in seeds:
            say(f"baseline {name}: seed {seed}")
            probs = run_method(scored, get_method(name), seed).probs
            refs[name].append({i: probs[i] for i in ids})
    bundle = VaultBundle(
        testbed_id=testbed.name,
        description=testbed.spec.description,
        labels=dict(zip((e.id for e in test), labels_of(test), strict=True)),
        final_labels=dict(zip((e.id for e in final), labels_of(final), strict=True)),
        references=refs,
        teacher_on_test=on_test,
    )
    bundle.save(cache)
    return bundle
