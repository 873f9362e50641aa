"""The operator's salt: carving an imported test file into test and final, secret files."""

from __future__ import annotations

import re
import stat

import pytest

from aar.w2s.data import Dataset, Example
from aar.w2s.testbeds.secret import SECRET_DIR, carve_final, new_salt, read_salt, write_secret


def _imported(n: int = 90) -> Dataset:
    def ex(split: str, i: int, group: str | None = None) -> Example:
        return Example(f"{split}-{i:06d}", f"q{split}{i}", ("a",), i % 2, group, {"subset": "s"})

    test = [ex("te", i, f"c{i // 3}" if i < 30 else None) for i in range(n)]  # 10 groups of 3, then singles
    return Dataset(
        "imp", {"train_label": [ex("tl", 1)], "train_unlabel": [ex("tu", 1)], "dev": [], "test": test}
    )


def test_carve_holds_back_a_third_by_whole_groups_under_the_salt():
    data = _imported()
    salt = new_salt()
    out = carve_final(data, salt)
    test, final = out.splits["test"], out.splits["final"]
    assert len(test) + len(final) == 90 and 28 <= len(final) <= 32
    by_source = {e.meta["source_id"]: e for e in (*test, *final)}
    assert set(by_source) == {e.id for e in data.splits["test"]}
    for e in data.splits["test"]:  # same input and label, new id that says nothing
        new = by_source[e.id]
        assert (new.prompt, new.options, new.label) == (e.prompt, e.options, e.label)
        assert re.fullmatch(r"imp-[0-9a-f]{16}", new.id)
    groups = {s: {e.group for e in xs if e.group} for s, xs in (("test", test), ("final", final))}
    assert not groups["test"] & groups["final"]  # a consistency group never spans the two
    assert out.splits["train_unlabel"] == data.splits["train_unlabel"]
    again = carve_final(data, salt)
    assert again.splits == out.splits  # the salt decides, nothing else
    other = carve_final(data, new_salt())
    assert {e.meta["source_id"] for e in other.splits["final"]} != {e.meta["source_id"] for e in final}
    assert all(e.unlabeled().meta == {} for e in final)  # source ids never reach a view


def test_secret_files_are_600_in_a_700_folder(tmp_path):
    salt = new_salt()
    f = write_secret(tmp_path, salt)
    assert read_salt(tmp_path) == salt
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / SECRET_DIR).stat().st_mode) == 0o700
    assert read_salt(tmp_path / "none") is None
    f.write_bytes(b"short")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        read_salt(tmp_path)
