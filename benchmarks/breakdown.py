"""Where a model's serving time goes, from TensorFlow's profiler on the end-to-end call;
and, for an exported signature, how its op time splits between the tf.Transform graph
and the model.

The forward pass names its stages (models/architectures/base.py: `embed`,
`retrieval`, `gather`; the layers `short_attention`, `long_attention`, `mlp`), so
the op time of each stage can be read off a profile of `candidate_logits` itself,
with no per-stage calls whose fixed cost would swamp the small stages. (ETA scoring
many candidates per history gathers inside `long_attention`:
TargetAttention.attend_gathered, one fused op with the fused kernels, so `gather`
is empty there.) Op time is
summed over the threads that ran the op (intra-op parallel kernels count on every
thread), so it is CPU time; `outside ops` is the rest of the wall time: Python
and executor dispatch, which every model pays.
"""

import collections
import glob
import os
import shutil
import tempfile
from typing import Callable, Dict

from benchmarks import report
from models.architectures.base import STAGE_EMBED, STAGE_GATHER, STAGE_RETRIEVAL

# The model's stage scopes and its attention / MLP layers' names.
STAGES = (STAGE_EMBED, STAGE_RETRIEVAL, STAGE_GATHER, "short_attention", "long_attention", "mlp")
CALLS = 20
TRANSFORM_SCOPE = "transform_features_layer"
TRANSFORM_OPS, MODEL_OPS = "transform ops", "model ops"


def _stage(op_name: str) -> str:
  scope = op_name.split("/", 1)[0]
  return scope if scope in STAGES else "other ops"


def op_times(call: Callable[[], object], classify: Callable[[str], str],
             calls: int = CALLS) -> Dict[str, float]:
  """{class: op ms per call} of `call` (already warm) under TensorFlow's profiler,
  each op's time going to classify(op name)."""
  import tensorflow as tf
  from tensorflow.tsl.profiler.protobuf import xplane_pb2

  log_dir = tempfile.mkdtemp(prefix="eta-profile-")
  try:
    tf.profiler.experimental.start(log_dir)
    for _ in range(calls):
      call()
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
        totals[classify(name.split(":", 1)[0])] += event.duration_ps / 1e9 / calls
  return dict(totals)


def _transform_or_model(op_name: str) -> str:
  # The exported signatures call the tf.Transform layer as `transform_features_layer*`
  # (models/export.py); every other op is the model's (or the glue between them).
  return TRANSFORM_OPS if TRANSFORM_SCOPE in op_name else MODEL_OPS


def signature_split(call: Callable[[], object], calls: int = CALLS) -> Dict[str, float]:
  """{'transform ops': ms, 'model ops': ms}: the op time (CPU time, summed over threads)
  per call of an exported signature, in its Transform graph and in the rest."""
  call()
  totals = op_times(call, _transform_or_model, calls)
  return {TRANSFORM_OPS: totals.get(TRANSFORM_OPS, 0.0), MODEL_OPS: totals.get(MODEL_OPS, 0.0)}


def stage_times(model, inputs, **timing) -> Dict[str, float]:
  """{'wall p50': ms, stage: op ms per call, ..., 'other ops', 'outside ops'}."""
  import tensorflow as tf

  logits = tf.function(model.candidate_logits)
  wall = report.latency_ms(report.time_calls(lambda: logits(inputs).numpy(), **timing))["p50_ms"]
  totals = op_times(lambda: logits(inputs).numpy(), _stage)
  result = {"wall p50": wall}
  result.update({stage: totals.get(stage, 0.0) for stage in STAGES + ("other ops",)})
  result["outside ops"] = max(0.0, wall - sum(totals.values()))
  return result
