"""Where a model's serving time goes: each stage of `candidate_logits` timed on
its own, on the real intermediate tensors of one request.

Stages: embed (candidate, short and long behaviour embeddings), retrieval (ETA:
code lookup + Hamming top-k), gather (the k retrieved behaviours), long attention,
short attention, mlp. Each stage is its own tf.function call, so each carries
the fixed cost of one call (`call overhead`, measured on an identity function);
the stage sum therefore exceeds the end-to-end time by about that much per stage.
"""

from typing import Dict

import tensorflow as tf

from benchmarks import report
from models import features
from models.architectures.base import attend_retrieved, long_mask
from models.architectures.eta import EtaModel


def _timed(fn, *args, **timing) -> float:
  return report.latency_ms(report.time_calls(lambda: _sync(fn(*args)), **timing))["p50_ms"]


def _sync(outputs):
  for tensor in tf.nest.flatten(outputs):
    tensor.numpy()
  return outputs


def stage_times(model, inputs: Dict[str, tf.Tensor], **timing) -> Dict[str, float]:
  """p50 ms per stage of model.candidate_logits(inputs), plus total and call overhead."""
  x = inputs
  times = {"total": _timed(tf.function(model.candidate_logits), x, **timing),
           "call overhead": _timed(tf.function(tf.identity), x[features.ITEM], **timing)}

  def embed(x):
    candidates = model.candidate_vectors(x[features.ITEM], x[features.CATEGORY])
    short = model.behaviour_vectors(x[features.SHORT_ITEMS], x[features.SHORT_CATEGORIES],
                                    x[features.SHORT_TIME_GAPS])
    long = model.behaviour_vectors(x[features.LONG_ITEMS], x[features.LONG_CATEGORIES],
                                   x[features.LONG_TIME_GAPS])
    return candidates, short, long

  times["embed"] = _timed(tf.function(embed), x, **timing)
  candidates, short, long = embed(x)
  short_attention = tf.function(lambda c, s, m: model.short_attention([c, s], behaviour_mask=m))
  times["short attention"] = _timed(short_attention, candidates, short,
                                    x[features.SHORT_ITEMS] > 0, **timing)
  parts = [candidates, tf.zeros(tf.concat([tf.shape(candidates)[:2], [8]], 0)),
           short_attention(candidates, short, x[features.SHORT_ITEMS] > 0)]

  if isinstance(model, EtaModel):
    retrieve = tf.function(model.retrieve)
    times["retrieval"] = _timed(retrieve, x, **timing)
    indices, _, valid = retrieve(x)
    gather = tf.function(lambda b, i: tf.gather(b, i, batch_dims=1))
    times["gather"] = _timed(gather, long, indices, **timing)
    retrieved = gather(long, indices)  # [1, C, k, D]
    attend = tf.function(lambda c, r, v: attend_retrieved(model.long_attention, c, r, v, False))
    times["long attention"] = _timed(attend, candidates, retrieved, valid, **timing)
    parts.append(attend(candidates, retrieved, valid))
  elif model.uses_long_sequence and hasattr(model, "long_attention"):
    attend = tf.function(lambda c, b, m: model.long_attention([c, b], behaviour_mask=m))
    times["long attention"] = _timed(attend, candidates, long, long_mask(x), **timing)
    parts.append(attend(candidates, long, long_mask(x)))
  elif model.uses_long_sequence:
    long_part = tf.function(lambda x, c: model.long_interest(x, c, False))
    times["long interest"] = _timed(long_part, x, candidates, **timing)
    parts.append(long_part(x, candidates))
  mlp = tf.function(lambda h: model.mlp(h))
  times["mlp"] = _timed(mlp, tf.concat(parts, -1), **timing)
  return times
