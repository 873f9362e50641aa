"""The composable methods added for the offline researcher: recipe and probe."""

import numpy as np
import pytest

from aar.w2s.experiment import run_method
from aar.w2s.methods.base import MethodError
from aar.w2s.methods.registry import get_method


def _probs(run):
    return np.array(list(run.probs.values()))


def test_recipe_defaults_are_vanilla(math_tiny):
    a = run_method(math_tiny, get_method("recipe"), seed=0)
    b = run_method(math_tiny, get_method("vanilla"), seed=0)
    assert np.allclose(_probs(a), _probs(b))


@pytest.mark.parametrize(
    "params",
    [
        {"prior_weight": 1.0, "soft": True, "keep": 0.7, "post_prior": 0.5},
        {"weight_power": 1.0, "aux_alpha": 0.5, "curriculum": True},
        {"ensemble": 2, "temperature": 2.0, "soft": True},
        {"rounds": 1, "self_keep": 0.5},
    ],
)
def test_recipe_ingredients_compose(math_tiny, chat_tiny, params):
    for tb in (math_tiny, chat_tiny):
        run = run_method(tb, get_method("recipe"), seed=0, params=params, splits=("test", "dev"))
        p = _probs(run)
        assert len(p) == tb.dataset.sizes()["test"] + tb.dataset.sizes()["dev"]
        assert np.all((p >= 0) & (p <= 1)) and p.std() > 0


def test_recipe_fusing_the_prior_changes_predictions(math_tiny):
    a = _probs(run_method(math_tiny, get_method("recipe"), seed=0))
    b = _probs(run_method(math_tiny, get_method("recipe"), seed=0, params={"prior_weight": 2.0}))
    assert not np.allclose(a, b)


def test_recipe_prior_gate_takes_the_prior_where_confident_and_a_trained_student_elsewhere(
    math_tiny, chat_tiny
):
    for tb in (math_tiny, chat_tiny):
        prior = _probs(run_method(tb, get_method("zero_shot"), seed=0))
        student = _probs(run_method(tb, get_method("vanilla"), seed=0))  # the gate's student, defaults
        gated = run_method(tb, get_method("recipe"), seed=0, params={"prior_gate": 0.5})
        teacher = tb.teacher(0).probs
        p = _probs(gated)
        from_prior, from_student = np.isclose(p, prior), np.isclose(p, student, atol=1e-5)
        assert np.all(from_prior | from_student)
        # the prior keeps its confident inputs: every student-predicted one is less confident
        only_student = from_student & ~from_prior
        assert 0.2 < only_student.mean() < 0.8
        conf = np.abs(prior - 0.5)
        assert conf[only_student].max() <= conf[from_prior & ~from_student].min() + 1e-9
        # no teacher output on a test input is used (none is even available to the method)
        t = np.array([teacher[i] for i in gated.probs])
        assert not np.all(np.isclose(p, prior) | np.isclose(p, t))


def test_recipe_rejects_bad_parameters(math_tiny):
    with pytest.raises(ValueError, match="ensemble"):
        run_method(math_tiny, get_method("recipe"), params={"ensemble": 3, "rounds": 1})
    with pytest.raises(ValueError, match="keep"):
        run_method(math_tiny, get_method("recipe"), params={"keep": 0.0})
    with pytest.raises(ValueError, match="prior_gate"):
        run_method(math_tiny, get_method("recipe"), params={"prior_gate": 1.0})
    with pytest.raises(MethodError):
        run_method(math_tiny, get_method("recipe"), params={"nope": 1})


def test_probe_runs_and_is_deterministic(math_tiny, chat_tiny):
    for tb in (math_tiny, chat_tiny):
        a = run_method(tb, get_method("probe"), seed=1, params={"keep": 0.6, "l2": 10.0})
        b = run_method(tb, get_method("probe"), seed=1, params={"keep": 0.6, "l2": 10.0})
        p = _probs(a)
        assert np.all((p >= 0) & (p <= 1))
        assert np.allclose(p, _probs(b))
