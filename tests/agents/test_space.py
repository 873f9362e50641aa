import random

from aar.agents.space import Config, combine, mutate, to_recipe, valid


def test_config_is_canonical():
    a = Config.of("recipe", {"soft": True, "keep": 1.0, "prior_weight": 1.0})
    b = Config.of("recipe", {"prior_weight": 1.0, "soft": True})
    assert a == b and a.key == b.key and "keep" not in a.kwargs


def test_mutation_moves_one_knob_one_step_and_is_deterministic():
    base = Config.of("recipe", {"prior_weight": 1.0})
    out1 = [mutate(base, ["prior_weight", "soft"], random.Random(3)) for _ in range(5)]
    out2 = [mutate(base, ["prior_weight", "soft"], random.Random(3)) for _ in range(5)]
    assert out1 == out2
    for new in out1:
        diff = {k for k in set(new.kwargs) | set(base.kwargs) if new.kwargs.get(k) != base.kwargs.get(k)}
        assert len(diff) == 1 and diff <= {"prior_weight", "soft"}
        if "prior_weight" in diff:
            assert new.kwargs.get("prior_weight", 0.0) in (0.5, 2.0)


def test_knobless_methods_mutate_as_recipes_and_cost_is_capped():
    assert mutate(Config.of("vanilla"), ["keep"], random.Random(0)).method == "recipe"
    assert not valid(Config.of("recipe", {"ensemble": 2, "rounds": 1}), max_cost=2)


def test_combining_ideas():
    conf = Config.of("confident", {"keep": 0.7})
    assert to_recipe(conf) == Config.of("recipe", {"keep": 0.7})
    both = combine(Config.of("recipe", {"prior_weight": 1.0}), conf)
    assert both == Config.of("recipe", {"prior_weight": 1.0, "keep": 0.7})
    assert combine(Config.of("probe"), conf) is None


def test_a_gated_recipe_gates_a_student_so_student_knobs_combine():
    assert valid(Config.of("recipe", {"prior_gate": 0.5, "prior_weight": 1.0, "temperature": 2.0}))
    assert valid(Config.of("recipe", {"prior_gate": 0.5, "keep": 0.7}))
    assert valid(Config.of("recipe", {"prior_gate": 0.25, "ensemble": 2}))
    assert not valid(Config.of("recipe", {"prior_gate": 0.25, "ensemble": 2, "rounds": 1}))
    gated = Config.of("recipe", {"prior_gate": 0.5})
    for seed in range(20):
        new = mutate(gated, ["prior_gate", "keep", "soft"], random.Random(seed))
        assert new is None or valid(new)


def test_shipped_params_match_the_registry_without_importing_torch():
    """The researcher reads the shipped methods' parameters from their source: the same as the registry's,
    and the agent process imports no torch for them (seconds of every agent's start)."""
    import subprocess
    import sys

    from aar.agents.space import shipped_params
    from aar.w2s.methods.registry import builtin_methods

    assert shipped_params() == {m.name: dict(m.params) for m in builtin_methods().values()}
    code = (
        "import sys, aar.agents.run_agent, aar.agents.offline, aar.agents.controls, aar.agents.tools, "
        "aar.agents.experiments, aar.client\n"
        "from aar.agents.space import shipped_params, RECIPE_DEFAULTS\n"
        "assert shipped_params()['recipe'] == RECIPE_DEFAULTS\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
