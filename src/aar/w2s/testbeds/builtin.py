"""The built-in testbeds: their specs, by name.

``math``, ``code`` and ``chat`` are the calibrated testbeds (see the README's table); the
``*-tiny`` variants build in seconds for tests and smoke runs and are not calibrated. Loading one
(building it first if needed) is :func:`aar.w2s.testbeds.registry.load_testbed`.
"""

from __future__ import annotations

from dataclasses import replace

from aar.w2s.testbeds.spec import ModelSpec, TestbedSpec
from aar.w2s.train import TrainConfig

# test and final are drawn from what the corpus and the public splits leave of each world's problems
# (math 2,098, code 2,481, chat 366 creatures x 6): final gets 1,000 and test the rest, since the
# pools cannot give 2,000 + 1,000 (test was 2,000 / 2,000 / 1,600 before the final split existed).
_PUBLIC = {"train_label": 500, "train_unlabel": 3000, "dev": 500}
_TINY = {"train_label": 150, "train_unlabel": 600, "dev": 100, "test": 300, "final": 200}

TESTBEDS: dict[str, TestbedSpec] = {
    "math": TestbedSpec(
        name="math",
        world="math",
        strong=ModelSpec(n_layer=4, d_model=64, n_head=4, steps=2000),
        weak=ModelSpec(n_layer=1, d_model=32, n_head=2, steps=300),
        sizes={**_PUBLIC, "test": 1098, "final": 1000},
        corpus_error_rate=0.5,
        judgment_error_share=0.6,
        pretrain_share=0.5,
        description="Two-digit addition/subtraction; the corpus often forgets the carry or borrow.",
    ),
    "code": TestbedSpec(
        name="code",
        world="code",
        strong=ModelSpec(n_layer=4, d_model=64, n_head=4, steps=2500),
        weak=ModelSpec(n_layer=1, d_model=32, n_head=2, steps=300),
        sizes={**_PUBLIC, "test": 1480, "final": 1000},
        corpus_error_rate=0.6,
        judgment_error_share=0.6,
        pretrain_share=0.7,
        corpus_repeats=2,
        description="Tiny programs printing an expression; the corpus often ignores operator precedence.",
    ),
    "chat": TestbedSpec(
        name="chat",
        world="chat",
        strong=ModelSpec(n_layer=4, d_model=64, n_head=4, steps=2500),
        weak=ModelSpec(n_layer=1, d_model=32, n_head=2, steps=400),
        sizes={"train_label": 400, "train_unlabel": 2400, "dev": 400, "test": 1194, "final": 1000},
        corpus_error_rate=0.6,
        judgment_error_share=1.0,
        pretrain_share=1.0,
        corpus_repeats=2,
        world_kwargs={"n_creatures": 900},
        description="Questions about a generated bestiary; the corpus often agrees with the user's belief.",
    ),
}
for _name in ("math", "code", "chat"):
    _s = TESTBEDS[_name]
    TESTBEDS[f"{_name}-tiny"] = replace(
        _s,
        name=f"{_name}-tiny",
        strong=ModelSpec(n_layer=2, d_model=48, n_head=2, steps=800),
        weak=ModelSpec(n_layer=1, d_model=16, n_head=2, steps=20),
        # chat-tiny's 200 creatures leave 58 (348 judgments) for test and final
        sizes=_TINY if _name != "chat" else {**_TINY, "test": 204, "final": 144},
        world_kwargs={"chat": {"n_creatures": 200}}.get(_name, {}),
        strong_train=TrainConfig(epochs=2, lr=1e-3),
        description=f"Tiny, uncalibrated {_name} testbed for tests and smoke runs.",
    )
