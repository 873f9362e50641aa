import json

import pytest

from aar.agents.directions import DirectionError, assign, builtin_directions, load_directions
from aar.agents.space import Config


def test_at_least_nine_builtin_directions_with_regions():
    ds = builtin_directions()
    assert len(ds) >= 9
    assert len({d.name for d in ds}) == len(ds)
    for d in ds:
        assert len(d.text) > 40 and d.region["seeds"] and d.region["knobs"]
        for s in d.region["seeds"]:
            Config.of(s["method"], s.get("params"))


def test_assign_round_robin_and_identical_ablation():
    ds = builtin_directions()
    diverse = assign(ds, 12)
    assert [d.name for d in diverse[:9]] == [d.name for d in ds[:9]]
    assert diverse[9] == ds[0]
    same = assign(ds, 4, same="curriculum")
    assert {d.name for d in same} == {"curriculum"}
    with pytest.raises(DirectionError, match="unknown direction"):
        assign(ds, 2, same="nope")


def test_user_directions_from_json_and_text(tmp_path):
    j = tmp_path / "d.json"
    j.write_text(json.dumps([{"name": "mine", "text": "Try something odd."}]))
    (d,) = load_directions(j)
    assert d.name == "mine" and d.region["seeds"]
    t = tmp_path / "d.txt"
    t.write_text("alpha: look at the data\n  more words\n\nbeta: something else\n")
    ds = load_directions(t)
    assert [x.name for x in ds] == ["alpha", "beta"] and ds[0].text == "look at the data more words"
    t.write_text("no colon here")
    with pytest.raises(DirectionError):
        load_directions(t)
    j.write_text("{}")
    with pytest.raises(DirectionError):
        load_directions(j)
