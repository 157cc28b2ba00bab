"""Tests of `eta bench train`: the smoke suite end to end, and its pure helpers."""

import argparse
import json
import math
import os

import pytest

from benchmarks import report
from benchmarks import training_throughput as tt


def _args(output, smoke=True, **overrides):
  parser = argparse.ArgumentParser()
  tt.add_arguments(parser)
  args = parser.parse_args([])
  args.output, args.smoke = str(output), smoke
  for name, value in overrides.items():
    setattr(args, name, value)
  return args


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  """One smoke run (4 worker processes) shared by the tests below."""
  output = tmp_path_factory.mktemp("bench_train")
  return output, tt.run(_args(output))


def test_smoke_has_a_row_per_model_and_length(smoke):
  _, result = smoke
  keys = [(row["model"], row["history_length"]) for row in result["rows"]]
  assert keys == [("eta", 32), ("eta", 64), ("din_long", 32), ("din_long", 64)]
  assert not [row for row in result["rows"] if "error" in row]


def test_smoke_rows_are_consistent(smoke):
  _, result = smoke
  for row in result["rows"]:
    assert row["batch_size"] == 16 and row["steps"] == 3 and row["warmup_steps"] == 1
    # examples/s is the batch over the median step time.
    assert row["examples_per_s"] == pytest.approx(16 / (row["step_ms_p50"] / 1e3), rel=1e-9)
    assert row["step_ms_p90"] >= row["step_ms_p50"] > 0
    # The first step traces the train function: far slower than a warm step.
    assert row["first_step_s"] > row["step_ms_p50"] / 1e3
    assert row["rss_before_training_mb"] > 100  # TensorFlow is loaded
    assert row["peak_rss_mb"] >= row["rss_before_training_mb"]
    assert row["training_memory_mb"] == pytest.approx(
        row["peak_rss_mb"] - row["rss_before_training_mb"])
    assert row["training_memory_mb"] > 0
    assert row["setup_peak_rss_mb"] > 100
    assert row["parameters"] > 1000 and row["autograph_speedup"]
    assert row["top_k"] == 8 and row["vocab"] == 1000


def test_smoke_writes_json_markdown_and_plots(smoke):
  output, result = smoke
  with open(os.path.join(output, "train.json")) as handle:
    saved = json.load(handle)
  assert saved["smoke"] and len(saved["rows"]) == 4
  assert [entry["history_length"] for entry in saved["summary"]["speedups"]] == [32, 64]
  assert all("eta/din_long" in entry for entry in saved["summary"]["speedups"])
  markdown = open(os.path.join(output, "train.md")).read()
  assert markdown == result["markdown"] and markdown.startswith("## Training throughput")
  assert "SMOKE" in markdown and "eta/din_long" in markdown and "MB per 1000" in markdown
  for name in ("train.png", "train_memory.png"):
    with open(os.path.join(output, name), "rb") as handle:
      assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_failed_worker_becomes_an_error_row(tmp_path, monkeypatch):
  def fail(module, args, timeout=None):
    raise RuntimeError("worker died: MemoryError")
  monkeypatch.setattr(report, "run_worker", fail)
  result = tt.run(_args(tmp_path, models="eta", history_lengths="32"))
  assert result["rows"][0]["error"].endswith("MemoryError")
  assert "failed" in result["markdown"]
  assert json.load(open(tmp_path / "train.json"))["rows"][0]["model"] == "eta"


def test_smoke_overrides_sizes_and_parses_lists():
  settings = tt._settings(_args("unused", models="eta, din_long,din"))
  assert settings["history_lengths"] == [32, 64] and settings["batch_size"] == 16
  assert settings["models"] == ["eta", "din_long", "din"]
  full = tt._settings(_args("unused", smoke=False))
  assert full["history_lengths"] == [256, 1024, 4096] and full["jobs"] == 1
  with pytest.raises(ValueError):
    tt._settings(_args("unused", smoke=False, warmup_steps=0))


def test_loglog_slopes():
  xs = [256, 1024, 4096]
  assert tt.loglog_slopes(xs, [2 * x for x in xs]) == pytest.approx([1.0, 1.0])
  assert tt.loglog_slopes(xs, [x * x for x in xs]) == pytest.approx([2.0, 2.0])
  assert tt.loglog_slopes(xs, [5, 5, 5]) == pytest.approx([0.0, 0.0])
  assert tt.loglog_slopes(xs, [0, 3, 6]) == [None, pytest.approx(0.5)]
  assert tt.loglog_slopes([256], [1.0]) == []


def test_offset_power_exponent_removes_the_constant():
  xs = [256, 1024, 4096]
  linear = [600 + 0.25 * x for x in xs]
  # A plain log-log slope under-reads linear growth on top of a constant ...
  assert max(tt.loglog_slopes(xs, linear)) < 0.9
  # ... the offset fit recovers it.
  assert tt.offset_power_exponent(xs, linear) == pytest.approx(1.0, abs=0.02)
  quadratic = [600 + 1e-4 * x * x for x in xs]
  assert tt.offset_power_exponent(xs, quadratic) == pytest.approx(2.0, abs=0.02)
  assert tt.offset_power_exponent([256, 1024], [1.0, 2.0]) is None


def test_linear_fit_in_mb_per_behaviour():
  fit = tt.linear_fit([256, 1024, 4096], [600 + 0.25 * x for x in (256, 1024, 4096)])
  assert fit["slope"] == pytest.approx(0.25) and fit["intercept"] == pytest.approx(600)


def test_summarize_speedups_and_target():
  def row(model, length, examples_per_s, memory):
    return {"model": model, "history_length": length, "examples_per_s": examples_per_s,
            "examples_per_cpu_s": examples_per_s / 2, "training_memory_mb": memory,
            "step_ms_p50": 256e3 / examples_per_s}
  rows = [row("eta", 256, 4000, 100), row("eta", 1024, 3600, 160), row("eta", 4096, 3000, 400),
          row("din_long", 256, 3000, 120), row("din_long", 1024, 1000, 400),
          {"model": "din_long", "history_length": 4096, "error": "out of memory"}]
  summary = tt.summarize(rows, ["eta", "din_long"], [256, 1024, 4096])
  assert [entry.get("eta/din_long") for entry in summary["speedups"]] == [
      pytest.approx(4 / 3), pytest.approx(3.6), None]
  assert summary["speedups"][1]["eta/din_long per CPU-s"] == pytest.approx(3.6)
  assert summary["target"]["met"] and summary["target"]["eta/din_long"] == pytest.approx(3.6)
  eta = summary["growth"]["eta"]
  assert eta["memory_exponent"] == pytest.approx(1.0, abs=0.02)
  assert eta["memory_mb_per_1000"] == pytest.approx(78.125)
  assert summary["growth"]["din_long"]["history_lengths"] == [256, 1024]
  assert math.isclose(summary["growth"]["din_long"]["memory_loglog_slopes"][0],
                      math.log(400 / 120) / math.log(4))
