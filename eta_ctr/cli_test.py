"""The `eta` CLI: synth -> ingest on a generated log, and clear errors."""

import json
import os

import pytest

from eta_ctr import cli


def test_synth_then_ingest_with_global_cutoff(tmp_path, capsys):
  log_path = str(tmp_path / "log.jsonl")
  assert cli.main(["synth", "--events", "1500", "--format", "jsonl", "--output", log_path]) == 0
  out = str(tmp_path / "out")
  assert cli.main(["ingest", "--data", log_path, "--output", out, "--max-history", "32",
                   "--eval-cutoff", "2021-02-01T00:00:00Z"]) == 0
  with open(os.path.join(out, "ingest_report.json")) as handle:
    report = json.load(handle)
  assert report["config"]["ingest"]["split"] == "global_time"
  assert report["config"]["ingest"]["eval_cutoff"] == 1612137600
  assert report["rows_read"] == report["rows_valid"] == 1500
  assert report["history_length"]["max"] <= 32
  assert "rows read" in capsys.readouterr().out


def test_unknown_extension_needs_format(tmp_path):
  path = tmp_path / "log.txt"
  path.write_text("x\n")
  with pytest.raises(SystemExit, match="--format"):
    cli.main(["ingest", "--data", str(path), "--output", str(tmp_path / "out")])


def test_missing_movielens_path_is_a_clear_error(tmp_path, capsys):
  assert cli.main(["ingest", "--data", "movielens-100k", "--data-path", str(tmp_path),
                   "--output", str(tmp_path / "out")]) == 1
  err = capsys.readouterr().err
  assert "eta ingest FAILED: DatasetNotFound: no movielens-100k" in err
  assert "a click-log file, directory or glob of your own goes in --data" in err


def test_an_unreadable_log_fails_in_one_clear_line(tmp_path, capsys):
  (tmp_path / "logs").mkdir()
  (tmp_path / "logs" / "a.csv").write_text("u1,i1,100,1\n")  # no header
  assert cli.main(["ingest", "--data", str(tmp_path / "logs"), "--format", "csv",
                   "--output", str(tmp_path / "out")]) == 1
  err = capsys.readouterr().err
  assert "eta ingest FAILED: ValueError:" in err and "a.csv" in err and "header" in err
  assert "Traceback" not in err


def test_variant_flag_parses_typed_settings_and_refuses_bad_ones():
  from eta_ctr import flags  # pylint: disable=g-import-not-at-top
  variant = flags.parse_variant("eta_item=eta:hash_category=false,top_k=32,mlp_units=64+32")
  assert (variant.label, variant.model) == ("eta_item", "eta")
  assert variant.changes == {"hash_category": False, "top_k": 32, "mlp_units": (64, 32)}
  for bad in ("eta_item", "x=nope:top_k=1", "eta=din", "x=eta:top_k", "x=eta:nope=1"):
    with pytest.raises(SystemExit):
      flags.parse_variant(bad)
