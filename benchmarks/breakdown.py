"""Where a model's serving time goes, from TensorFlow's profiler on the end-to-end call.

The forward pass names its stages (models/architectures/base.py: `embed`,
`retrieval`, `gather`; the layers `short_attention`, `long_attention`, `mlp`), so
the op time of each stage can be read off a profile of `candidate_logits` itself,
with no per-stage calls whose fixed cost would swamp the small stages. Op time is
summed over the threads that ran the op (intra-op parallel kernels count on every
thread), so it is CPU time; `outside ops` is the rest of the wall time: Python
and executor dispatch, which every model pays.
"""

import collections
import glob
import os
import shutil
import tempfile
from typing import Dict

from benchmarks import report
from models.architectures.base import STAGE_EMBED, STAGE_GATHER, STAGE_RETRIEVAL

# The model's stage scopes and its attention / MLP layers' names.
STAGES = (STAGE_EMBED, STAGE_RETRIEVAL, STAGE_GATHER, "short_attention", "long_attention", "mlp")
CALLS = 20


def _stage(op_name: str) -> str:
  scope = op_name.split("/", 1)[0]
  return scope if scope in STAGES else "other ops"


def stage_times(model, inputs, **timing) -> Dict[str, float]:
  """{'wall p50': ms, stage: op ms per call, ..., 'other ops', 'outside ops'}."""
  import tensorflow as tf
  from tensorflow.tsl.profiler.protobuf import xplane_pb2

  logits = tf.function(model.candidate_logits)
  wall = report.latency_ms(report.time_calls(lambda: logits(inputs).numpy(), **timing))["p50_ms"]
  log_dir = tempfile.mkdtemp(prefix="eta-profile-")
  try:
    tf.profiler.experimental.start(log_dir)
    for _ in range(CALLS):
      logits(inputs).numpy()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True)[0],
              "rb") as handle:
      space.ParseFromString(handle.read())
  finally:
    shutil.rmtree(log_dir, ignore_errors=True)
  totals = collections.Counter()
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):  # the executor's worker threads
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ":" not in name or "::" in name:  # executor bookkeeping, ParallelFor: not ops
          continue
        totals[_stage(name.split(":", 1)[0])] += event.duration_ps / 1e9 / CALLS
  result = {"wall p50": wall}
  result.update({stage: totals.get(stage, 0.0) for stage in STAGES + ("other ops",)})
  result["outside ops"] = max(0.0, wall - sum(totals.values()))
  return result
