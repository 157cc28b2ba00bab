"""The progress display reads the orchestrator's log lines."""

import io
import logging

from pipeline.progress import ComponentProgress


def test_progress_reports_running_done_cached_and_current():
  stream = io.StringIO()
  absl = logging.getLogger("absl")
  absl.setLevel(logging.INFO)
  with ComponentProgress(["A", "B"], stream=stream) as progress:
    absl.info("Component A is running.")
    absl.info("A cached execution %d is used.", 3)
    absl.info("Component A is finished.")
    absl.info("Component B is running.")
  lines = stream.getvalue().splitlines()
  assert lines == ["[1/2] A running ...", "[1/2] A reused from cache", "[2/2] B running ..."]
  assert progress.current == "B"  # what a failure message names
