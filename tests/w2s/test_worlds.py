import hashlib
import json
import random
import re
import secrets

import pytest

from aar.w2s.data import SPLITS
from aar.w2s.testbeds.build import DRAWN_SPLITS, PUBLIC_SPLITS, make_dataset
from aar.w2s.testbeds.registry import TESTBEDS
from aar.w2s.testbeds.worlds import ChatWorld, CodeWorld, MathWorld, _eval


def test_math_answers_and_popular_error():
    probs = {p.key: p for p in MathWorld().problems(random.Random(0))}
    p = probs["37+48"]
    assert p.answer == "085" and p.error == "075"  # forgot the carry
    p = probs["52-27"]
    assert p.answer == "025" and p.error == "035"  # smaller digit from the larger
    assert probs["21+13"].error is None  # no carry: no popular error
    assert all(m != p.answer for m in p.near_misses)


def test_code_precedence_and_left_to_right_error():
    assert _eval(37, 4, 3, "x+y*k", left_to_right=False) == 49
    assert _eval(37, 4, 3, "x+y*k", left_to_right=True) == 123
    assert _eval(37, 4, 3, "x+k*y", left_to_right=False) == 49
    assert _eval(37, 4, 3, "x+k*y", left_to_right=True) == 160
    assert _eval(37, 4, 3, "y*k+x", left_to_right=True) == 49
    probs = {p.prompt: p for p in CodeWorld().problems(random.Random(1))}
    p = probs["x=37;y=4;print(x+y*3)>"]
    assert p.answer == "049" and p.error == "123"
    p = probs["x=37;y=4;print(x+3*y)>"]
    assert p.answer == "049" and p.error == "160"
    assert probs["x=37;y=4;print(y*3+x)>"].error is None  # left to right is right here
    assert probs["x=37;y=1;print(x+3*y)>"].error is None  # both readings agree
    open_to_error = sum(p.error is not None for p in probs.values()) / len(probs)
    assert 0.6 < open_to_error < 0.67  # two forms of three, less the programs where the readings agree
    assert all(p.answer not in p.near_misses for p in probs.values())


def test_chat_belief_is_the_popular_error():
    for p in ChatWorld(n_creatures=20).problems(random.Random(2)):
        assert p.pairwise
        if p.error is not None:
            assert p.error != p.answer and f"i think {p.error}." in p.prompt


# sha256 of the corpus and the public splits as generated before test and final were drawn under a
# secret salt (build version 1): pretrained checkpoints and the training side must not change.
PUBLIC_HASHES = {
    "math": {
        "corpus": "abb6d4966d24c428c03524f9982a8a749dbdf4e93b14de70f56a314c066fd53d",
        "train_label": "39db069e4798b99ff7b0cc4864276e94abf0a175e767b1ea04408563e1e2f965",
        "train_unlabel": "96026ff4313d1844c3645c0670ed94eab1a0d2d63ab7c147642519ad25c02a3e",
        "dev": "4358bc8701cde3fb6dee727348bc8657c0b4359b853cfe9a0a8bd78cecc0dd31",
    },
    "code": {
        "corpus": "a06777d0cc04fc2c9397346736bdfc16f90b419bb3fe29baf77aa9004b810e86",
        "train_label": "cc7fccf9e93bfdf9a273f78b563e51f4fd239167de52cb250878640ad1a5573b",
        "train_unlabel": "8199834ee02d17257a4d9bb4148cb17011efb096a5e499b307d992eec97f077c",
        "dev": "758243258fd6a9c7fbe599462416d7e4380b636ea6c5784c78c5f84a36446445",
    },
    "chat": {
        "corpus": "1979249e64e6bc4e1e64c2a2240503ff3f8a969abb85aa9eada5358b6fb9ea5b",
        "train_label": "de271fbf27edbb4688e8873e70ab694f01e17022da5cfefb3a2f79fb04c351a2",
        "train_unlabel": "95d213dd271c7cad6ca2a5982d379cd5315aed6d5d6a28153955faec0955ed52",
        "dev": "ac822c84d1db7cbed61986dd3a9bf45858abcefa8b2c2099d744a59ff5873922",
    },
    "math-tiny": {
        "corpus": "abb6d4966d24c428c03524f9982a8a749dbdf4e93b14de70f56a314c066fd53d",
        "train_label": "944ec27242fc781d841d24ec24f42d8d5f66b7be82372fdd45dcf4601f585572",
        "train_unlabel": "0e048949b2f66ad6ea34f0af2870402fdc725d8e20e4859774177424dd2d8b79",
        "dev": "1e3209c65cdb2b3891393b8a4840e734ed3ae1fb7658cbb1f39ad346fb9dfbb4",
    },
    "code-tiny": {
        "corpus": "a06777d0cc04fc2c9397346736bdfc16f90b419bb3fe29baf77aa9004b810e86",
        "train_label": "49b95a3f7f1e25eade7f9b88884bd9b7279075dbc447b10e64b3c82594103ac2",
        "train_unlabel": "ed5e9c6502c124e878e3052f6e0d8d37168827390b28cdd977b39e8055924ad0",
        "dev": "6bb54e22689db6cdb6d1f401750c049b6b842981faed951b533558314c8e0562",
    },
    "chat-tiny": {
        "corpus": "d6198cb8d07855acf8b7cf1cf453876abf1588b60c63ef234fe13f87fd20a002",
        "train_label": "394aaaa3718bb12a613e38985c5697340ce0171b83a246d10516fdb6ddfa1d79",
        "train_unlabel": "761b24107ca14d386b4cddc27deb8a698a589a3bc6ff53642e5d5c167e60347a",
        "dev": "eaed90066b1d5037e7ebdda1d14527980fdd03ad15fffd8fbc12f073d33b4deb",
    },
}


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()


@pytest.mark.parametrize("name", sorted(PUBLIC_HASHES))
def test_corpus_and_public_splits_are_fixed_and_the_draw_is_secret(name):
    """Corpus and public splits are byte-identical to build version 1's (so are the pretrained LMs);
    without the salt nothing of test or final exists, and two salts draw different test splits."""
    spec = TESTBEDS[name]
    public, corpus = make_dataset(spec)
    got = {s: _sha([e.to_json() for e in public.splits[s]]) for s in PUBLIC_SPLITS}
    got["corpus"] = _sha(corpus)
    assert got == PUBLIC_HASHES[name]
    assert public.splits["test"] == [] and public.splits["final"] == []
    a, corpus_a = make_dataset(spec, b"a" * 32)
    b, _ = make_dataset(spec, b"b" * 32)
    assert corpus_a == corpus
    for s in PUBLIC_SPLITS:
        assert a.splits[s] == b.splits[s] == public.splits[s]
    assert a.sizes() == b.sizes() == spec.sizes
    assert {e.group for e in a.splits["test"]} != {e.group for e in b.splits["test"]}
    assert not {e.id for e in a.splits["test"]} & {e.id for e in b.splits["test"]}
    again, _ = make_dataset(spec, b"a" * 32)
    assert [e.to_json() for s in DRAWN_SPLITS for e in again.splits[s]] == [
        e.to_json() for s in DRAWN_SPLITS for e in a.splits[s]
    ]


@pytest.mark.parametrize("name", ["math-tiny", "code-tiny", "chat-tiny", "chat"])
def test_all_five_splits_are_disjoint_by_underlying_problem(name):
    spec = TESTBEDS[name]
    d, corpus = make_dataset(spec, secrets.token_bytes(32))
    groups = {s: {e.group.split(".")[0] for e in xs} for s, xs in d.splits.items()}
    assert set(groups) == set(SPLITS) and all(groups.values())
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not groups[a] & groups[b], f"{name}: {a} and {b} share problems"
    if spec.pretrain_share < 1.0:  # judged problems never appear in the pretraining corpus
        corpus_prompts = {p for p, _ in corpus}
        assert not any(e.prompt in corpus_prompts for xs in d.splits.values() for e in xs)
    for s in DRAWN_SPLITS:  # ids say nothing: no running number, no split name
        assert all(re.fullmatch(rf"{re.escape(name)}-[0-9a-f]{{16}}", e.id) for e in d.splits[s])
        labels = [e.label for e in d.splits[s]]
        assert 0.3 < sum(labels) / len(labels) < 0.7
    labels = [e.label for e in d.splits["train_unlabel"]]
    assert 0.3 < sum(labels) / len(labels) < 0.7
