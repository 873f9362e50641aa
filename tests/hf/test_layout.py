"""Reading the original layout, importing it as a testbed, and the testbed CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from aar.cli import app
from aar.w2s.cache import CacheError
from aar.w2s.testbeds.imported import LayoutError, import_testbed, load_imported, read_layout
from aar.w2s.testbeds.registry import UnknownTestbedError, get_spec, load_testbed

from .layout import SIZES, write_domain


def test_reads_chat_and_binary_rows(tmp_path):
    chat = read_layout(write_domain(tmp_path / "chat", "chat"), "c")
    assert chat.sizes() == {"train_label": 24, "train_unlabel": 64, "dev": 0, "test": 48}
    ex = chat.splits["test"][0]
    row = json.loads((tmp_path / "chat" / "test.jsonl").read_text().splitlines()[0])
    assert ex.pairwise and ex.prompt == row["prompt"] and ex.options == (row["first"], row["second"])
    assert ex.label == (1 if row["label"] == "A" else 0) and ex.meta == {"subset": "fixture"}
    math = read_layout(write_domain(tmp_path / "math", "math"), "m", dev_size=10)
    ex = math.splits["train_label"][0]
    row = json.loads((tmp_path / "math" / "train_label.jsonl").read_text().splitlines()[0])
    assert not ex.pairwise and ex.options == (row["choice"],) and ex.label == int(row["label"])
    assert ex.group == f"c{row['consistency_id']}"
    assert math.sizes()["dev"] == 10 and math.sizes()["train_unlabel"] == SIZES["train_unlabel"] - 10
    again = read_layout(tmp_path / "math", "m", dev_size=10)
    assert [e.id for e in again.splits["dev"]] == [e.id for e in math.splits["dev"]]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q", "choice": "c"}, "no label"),
        ({"question": "q", "choice": "c", "label": "maybe"}, "true or false"),
        ({"prompt": "p", "first": "a", "second": "b", "label": "C"}, "'A' or 'B'"),
        ({"text": "?", "label": True}, "expected chat fields"),
    ],
)
def test_bad_rows_are_reported_with_file_and_line(tmp_path, row, message):
    d = write_domain(tmp_path / "d", "math")
    with open(d / "test.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(LayoutError, match=message) as e:
        read_layout(d, "d")
    assert f"test.jsonl:{SIZES['test'] + 1}" in str(e.value)


def test_parent_folder_names_its_domains(tmp_path):
    write_domain(tmp_path / "data" / "chat", "chat")
    write_domain(tmp_path / "data" / "math", "math")
    with pytest.raises(LayoutError, match="domain folders inside: chat, math"):
        read_layout(tmp_path / "data", "x")


def test_import_registers_a_loadable_testbed(tmp_path, tiny_llama, tiny_qwen2_chat, monkeypatch):
    monkeypatch.setenv("AAR_HOME", str(tmp_path / "home"))
    src = write_domain(tmp_path / "math", "math")
    tb = import_testbed(src, "fx-math", str(tiny_qwen2_chat), str(tiny_llama), tmp_path / "home")
    assert (tmp_path / "home" / "imported" / "fx-math" / "manifest.json").is_file()
    loaded = load_testbed("fx-math")
    assert loaded.spec == tb.spec and loaded.dataset.sizes() == tb.dataset.sizes()
    assert loaded.spec.strong_train.lr == 1e-4 and loaded.spec.strong_train.epochs == 5
    assert loaded.spec.strong["lora"]["rank"] == 32 and loaded.spec.world == "binary"
    assert loaded.strong_model().backbone.spec.path == str(tiny_llama)
    with pytest.raises(UnknownTestbedError, match=r"fx-math \(imported\)"):
        load_testbed("nope")
    with pytest.raises(UnknownTestbedError, match="imported testbed"):
        get_spec("fx-math")
    with pytest.raises(LayoutError, match="built-in"):
        import_testbed(src, "math", "w", "s", tmp_path / "home")
    (tmp_path / "home" / "imported" / "fx-math" / "manifest.json").write_text("{")
    with pytest.raises(CacheError):
        load_imported("fx-math", tmp_path / "home")


def test_cli_import_and_list(tmp_path, tiny_llama, tiny_qwen2_chat):
    src = write_domain(tmp_path / "chat", "chat")
    env = {"AAR_HOME": str(tmp_path / "home")}
    args = [
        "testbed",
        "import",
        str(src),
        "--name",
        "fx-chat",
        "--weak-model",
        str(tiny_qwen2_chat),
        "--strong-model",
        str(tiny_llama),
        "--dev-size",
        "8",
        "--lora-rank",
        "8",
        "--max-length",
        "256",
    ]
    r = CliRunner().invoke(app, args, env=env)
    assert r.exit_code == 0, r.output
    assert "imported fx-chat (pairwise)" in r.output and "dev 8" in r.output
    tb = load_imported("fx-chat", tmp_path / "home")
    assert tb.spec.strong["lora"]["rank"] == 8 and tb.spec.strong["max_length"] == 256
    r = CliRunner().invoke(app, ["testbed", "list"], env=env)
    assert r.exit_code == 0 and "fx-chat" in r.output and str(tiny_llama) in r.output
    r = CliRunner().invoke(app, [*args[:2], str(tmp_path), *args[3:]], env=env)
    assert r.exit_code == 2 and "not a domain folder" in r.output
