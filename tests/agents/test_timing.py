"""Spans of an agent's time: recorded one JSON line each, exclusive when nested, summed per kind."""

from __future__ import annotations

import json

import pytest

from aar.agents import timing


@pytest.fixture
def recorder(tmp_path):
    t = timing.configure(tmp_path, started_at=None)
    yield t
    t.close()
    timing._current = timing.Timing()


def test_nested_spans_are_exclusive_and_add_up(tmp_path, recorder):
    with timing.span("experiment_overhead"):
        timing.record("experiment", 2.5)
        with timing.span("diagnostics"):
            pass
    spans = timing.read_spans(tmp_path)
    assert [s["kind"] for s in spans] == ["experiment", "diagnostics", "experiment_overhead"]
    outer = spans[-1]
    # the outer span's own seconds leave out what was inside it (the recorded 2.5 s above all)
    assert float(outer["seconds"]) == pytest.approx(
        max(0.0, float(outer["end"]) - float(outer["start"]) - 2.5 - float(spans[1]["seconds"])), abs=1e-3
    )
    summary = timing.summarize(tmp_path)
    assert summary["experiment"] == 2.5
    assert set(timing.KINDS) <= set(summary)
    assert summary["model"] == 0.0


def test_span_is_written_when_the_block_raises(tmp_path, recorder):
    with pytest.raises(RuntimeError), timing.span("server"):
        raise RuntimeError("boom")
    assert [s["kind"] for s in timing.read_spans(tmp_path)] == ["server"]


def test_agent_start_is_recorded_once_before_the_first_span(tmp_path):
    t = timing.configure(tmp_path, started_at=1000.0)
    try:
        with timing.span("server"):
            pass
        with timing.span("notes"):
            pass
    finally:
        t.close()
        timing._current = timing.Timing()
    kinds = [s["kind"] for s in timing.read_spans(tmp_path)]
    assert kinds == ["agent_start", "server", "notes"]
    assert timing.read_spans(tmp_path)[0]["start"] == 1000.0


def test_torn_lines_are_skipped_and_resumes_append(tmp_path, recorder):
    timing.record("notes", 1.0)
    with open(tmp_path / timing.TIMING_FILE, "a") as f:
        f.write('{"kind": "server", "sec')  # a kill in the middle of a write
    recorder.close()
    t2 = timing.configure(tmp_path)
    try:
        timing.record("notes", 0.5)
    finally:
        t2.close()
    lines = (tmp_path / timing.TIMING_FILE).read_text().splitlines()
    assert len(lines) == 3  # the torn line stays on its own line, the new span on the next
    assert json.loads(lines[2])["kind"] == "notes"
    assert timing.summarize(tmp_path)["notes"] == 1.5


def test_unconfigured_spans_write_nothing(tmp_path):
    with timing.span("server"):
        timing.record("experiment", 1.0)
    assert not (tmp_path / timing.TIMING_FILE).exists()


def test_bad_input_is_refused(tmp_path, recorder):
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        timing.record("experiment", -1.0)
    with pytest.raises(ValueError, match="needs a kind"), timing.span(""):
        pass
    with pytest.raises(ValueError, match="not a folder"):
        timing.summarize(tmp_path / "missing")


def test_process_start_time_is_before_now():
    import time

    started = timing.process_start_time()
    assert started is not None and started <= time.time()
