"""A pipeline run killed mid-way re-runs to completion without using half-written artifacts."""

import os
import signal
import subprocess
import sys
import time

import pytest
from tfx.orchestration import metadata

from components import synth
from pipeline.local_runner import METADATA_FILE
from serving.testing import output_lines

pytestmark = pytest.mark.e2e


def _eta_run(args):
  """`eta ARGS` in its own process, as a user would type it: without
  TF_USE_LEGACY_KERAS in the environment (eta_ctr.runtime sets it)."""
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  env.pop("TF_USE_LEGACY_KERAS", None)
  return subprocess.Popen([sys.executable, "-m", "eta_ctr.cli", *args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _written_files(directory):
  """Regular files under directory, TFX's own .system bookkeeping left out."""
  return [name for path, _, names in os.walk(directory) for name in names
          if ".system" not in os.path.relpath(path, directory).split(os.sep)]


def test_killed_run_resumes_to_completion(tmp_path):
  log_path = str(tmp_path / "log.csv")
  synth.write(synth.SynthConfig(events=3000, mean_events_per_user=100, items=300, seed=4),
              log_path)
  root, serving = str(tmp_path / "pipeline"), str(tmp_path / "serving")
  args = ["run", "--data", log_path, "--pipeline-root", root, "--serving-dir", serving,
          "--long-seq-len", "32", "--short-seq-len", "4", "--top-k", "4",
          "--embedding-dim", "8", "--train-steps", "100", "--auc-floor", "0.5"]

  process = _eta_run(args)
  lines, seen = output_lines(process), []
  while not any("Transform running" in line for line in seen):
    line = lines.get(timeout=300)
    assert line is not None, "".join(seen)
    seen.append(line)
  # Kill it once Transform has written some of its files: a fixed delay may come
  # before the first file on a slow machine (or after the last on a fast one).
  deadline = time.monotonic() + 300
  while not _written_files(os.path.join(root, "Transform")):
    assert process.poll() is None and time.monotonic() < deadline, "".join(seen)
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=60)
  assert process.returncode == -signal.SIGKILL
  assert not os.path.exists(serving) or not os.listdir(serving)

  # -v: the command line never reaches TFX's absl flag parsing (-v = --verbosity).
  resumed = _eta_run(["-v", *args])
  output, _ = resumed.communicate(timeout=600)
  assert resumed.returncode == 0, output
  assert "ClickLogExampleGen reused from cache" in output  # finished before the kill
  assert "Transform done in" in output  # re-executed, not taken from the killed run
  assert len(os.listdir(serving)) == 1

  config = metadata.sqlite_metadata_connection_config(os.path.join(root, METADATA_FILE))
  with metadata.Metadata(config) as handle:
    store = handle.store
    executions = [e for e in store.get_executions()
                  if store.get_execution_types_by_id([e.type_id])[0].name.endswith("Transform")]
  assert executions[-1].last_known_state == executions[-1].COMPLETE
  assert len(executions) == 2 and executions[0].last_known_state != executions[0].COMPLETE
