"""`eta compare`'s claims from hand-built runs: mean ± sample std over seeds, and each
model's per-seed difference against eta, paired by seed index."""

import json

import numpy as np
import pytest

from eta_ctr.config import EtaConfig, IngestConfig
from pipeline import compare

# Per seed: eta's AUC and din's. din is always 0.004-0.006 below eta, although each
# model's AUC varies by more than that across seeds: the pairing shows the gap.
ETA_AUC = [0.750, 0.760, 0.745, 0.770, 0.755]
DIN_AUC = [0.745, 0.756, 0.740, 0.764, 0.751]


def _run(auc, seed, step=400):
  return {"auc": auc, "gauc": auc - 0.1, "logloss": 1 - auc, "logloss_over_base_rate": -0.01,
          "calibration": 1.0, "best_step": step + 100 * seed, "steps_trained": step + 600,
          "stopped_early": True, "train_examples_per_second": 1000.0 + seed,
          "parameters": 1234, "examples": 20_000, "history_longer_than_k": 0.8, "seed": seed}


def _runs():
  return {"din": [_run(a, s) for s, a in enumerate(DIN_AUC)],
          "eta": [_run(a, s) for s, a in enumerate(ETA_AUC)]}


def test_paired_differences_are_per_seed_against_eta():
  results = compare.summarize(_runs(), EtaConfig.for_movielens(), seeds=5)
  din = results["models"]["din"]
  differences = np.array(DIN_AUC) - np.array(ETA_AUC)  # [-0.005, -0.004, -0.005, -0.006, -0.004]
  assert din["vs_eta"]["auc"]["mean"] == pytest.approx(-0.0048)
  assert din["vs_eta"]["auc"]["std"] == pytest.approx(np.std(differences, ddof=1))
  assert din["vs_eta"]["auc"]["n"] == 5
  # The unpaired spread is several times the paired one.
  assert din["auc"]["std"] == pytest.approx(np.std(DIN_AUC, ddof=1))
  assert din["auc"]["std"] > 5 * din["vs_eta"]["auc"]["std"]
  assert "vs_eta" not in results["models"]["eta"]
  assert results["reference"] == "eta"
  assert din["best_step"] == {"mean": 600.0, "std": pytest.approx(np.std(
      [400, 500, 600, 700, 800], ddof=1)), "n": 5}
  assert results["config"]["ingest"]["valid_fraction"] == IngestConfig().valid_fraction
  json.dumps(results)  # results.json


def test_runs_that_cannot_be_paired_are_an_error():
  with pytest.raises(ValueError, match="cannot pair 2 runs with 3"):
    compare.paired_differences([_run(0.7, 0)] * 2, [_run(0.7, 0)] * 3)


def test_without_eta_there_is_no_reference():
  results = compare.summarize({"din": _runs()["din"]}, EtaConfig(), seeds=5)
  assert results["reference"] is None and "vs_eta" not in results["models"]["din"]
  assert "Δ" not in compare.results_table(results)


def test_one_seed_has_zero_std():
  assert compare.stat([0.7]) == {"mean": 0.7, "std": 0.0, "n": 1}


def test_table_and_files(tmp_path):
  results = compare.summarize(_runs(), EtaConfig.for_movielens(), seeds=5)
  table = compare.results_table(results)
  assert "| eta | 0.7560 ± 0.0096 | — |" in table
  assert "| din | 0.7512 ± 0.0094 | -0.0048 ± 0.0008 |" in table
  assert "chosen step" in table and "| 600 ± 158 |" in table
  assert "stopping step chosen on the valid split (each user's last 10% of train-period " \
         "events), never on eval: budget 2,000 steps for every model" in table
  compare.write_results(results, str(tmp_path))
  with open(tmp_path / "results.json") as handle:
    assert json.load(handle)["models"]["din"]["vs_eta"]["auc"]["n"] == 5
  assert (tmp_path / "results.md").read_text().startswith("# eta compare\n")
  assert (tmp_path / "results.png").stat().st_size > 0


def test_variants_differ_against_the_chosen_reference_and_list_their_settings(tmp_path):
  runs = _runs()
  runs["eta_item"] = [dict(_run(a - 0.002, s), retrieved_same_category=0.3,
                           history_same_category=0.2) for s, a in enumerate(ETA_AUC)]
  results = compare.summarize(runs, EtaConfig.for_movielens(), seeds=5, reference_name="din",
                              changes={"eta_item": {"hash_category": False}})
  assert results["reference"] == "din"
  assert results["models"]["eta"]["vs_din"]["auc"]["mean"] == pytest.approx(0.0048)
  assert results["models"]["eta_item"]["vs_din"]["auc"]["mean"] == pytest.approx(0.0028)
  assert results["models"]["eta_item"]["changes"] == {"hash_category": False}
  assert results["models"]["eta_item"]["retrieved_same_category"]["mean"] == 0.3
  table = compare.results_table(results)
  assert "- eta_item: hash_category=False" in table
  assert "| 30.0% / 20.0% |" in table and table.count("| — |") >= 2
  compare.write_results(results, str(tmp_path))


def test_a_variant_names_real_settings():
  variant = compare.Variant("eta_k32", "eta", {"top_k": 32, "clip_norm": 1.0})
  config = variant.apply(EtaConfig.for_movielens())
  assert (config.model.name, config.model.top_k, config.trainer.clip_norm) == ("eta", 32, 1.0)
  with pytest.raises(ValueError, match="unknown settings"):
    compare.Variant("x", "eta", {"top_kk": 3})
  with pytest.raises(ValueError, match="clip_norm"):
    compare.Variant("x", "eta", {"clip_norm": -1.0})
