import random

from aar.w2s.testbeds.build import make_dataset
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


def test_generation_is_deterministic_and_splits_disjoint():
    for name in ("math-tiny", "code-tiny", "chat-tiny"):
        spec = TESTBEDS[name]
        d1, c1 = make_dataset(spec)
        d2, c2 = make_dataset(spec)
        assert c1 == c2
        assert [e.to_json() for e in d1.splits["test"]] == [e.to_json() for e in d2.splits["test"]]
        groups = {s: {e.group.split(".")[0] for e in xs} for s, xs in d1.splits.items()}
        names = list(groups)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                assert not groups[a] & groups[b], f"{name}: {a} and {b} share problems"
        if spec.pretrain_share < 1.0:  # judged problems never appear in the pretraining corpus
            corpus_prompts = {p for p, _ in c1}
            assert not any(e.prompt in corpus_prompts for xs in d1.splits.values() for e in xs)
        labels = [e.label for e in d1.splits["train_unlabel"]]
        assert 0.3 < sum(labels) / len(labels) < 0.7
