"""Fixtures shared by the end-to-end tests: one pipeline run for all of them."""

import glob
import os
import shutil

import pytest

from components import synth
from eta_ctr import cli

# Small enough for CI (a few minutes on 2 cores), large enough that every
# component has real work and the model clears the blessing floor below.
MODEL_FLAGS = ("--long-seq-len", "64", "--short-seq-len", "8", "--top-k", "8",
               "--embedding-dim", "16", "--train-steps", "150", "--batch-size", "128",
               "--validate-every-steps", "100")
AUC_FLOOR = ("--auc-floor", "0.5")


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
  """`eta run` of the whole pipeline on a generated log, once per session.

  Returns a dict: `args` (the run's command line, without the blessing flags;
  running it again with the same root hits the cache), `log`, `pipeline_root`,
  `serving` (the Pusher's directory; later tests may push more versions into
  it), and, copied before any test changes anything, `first_version_dir` (the
  first pushed version, under its own directory), `version` and `eval_file`
  (one gzipped TFRecord file of the ingest's eval split).
  """
  root = tmp_path_factory.mktemp("pipeline_run")
  log_path = str(root / "data" / "log.csv")
  synth.write(synth.SynthConfig(events=6000, mean_events_per_user=150, items=500,
                                categories=20, seed=3), log_path)
  run = {"root": root, "log": log_path, "pipeline_root": str(root / "pipeline"),
         "serving": str(root / "serving")}
  run["args"] = ["run", "--data", log_path, "--pipeline-root", run["pipeline_root"],
                 "--serving-dir", run["serving"], *MODEL_FLAGS]
  assert cli.main(run["args"] + list(AUC_FLOOR)) == 0
  (version_dir,) = glob.glob(os.path.join(run["serving"], "*"))
  run["version"] = int(os.path.basename(version_dir))
  run["first_version_dir"] = str(root / "first_push" / str(run["version"]))
  shutil.copytree(version_dir, run["first_version_dir"])
  (run["eval_file"],) = glob.glob(os.path.join(
      run["pipeline_root"], "ClickLogExampleGen", "examples", "*", "Split-eval", "*.gz"))
  return run
