"""Which tf.distribute strategy a training process uses, from TF_CONFIG.

  auto          MultiWorkerMirroredStrategy when TF_CONFIG names a cluster of more
                than one worker (chief + workers), else MirroredStrategy (all
                local GPUs; one CPU replica on a CPU-only machine)
  default       the default (no-op) strategy
  mirrored      MirroredStrategy: data parallel over this machine's devices
  multi_worker  MultiWorkerMirroredStrategy: data parallel over the TF_CONFIG cluster

TF_CONFIG is what the Kubeflow TFJob operator and Vertex AI custom training set on
every replica. A multi-worker strategy must be created before the process runs
any TensorFlow op (TF raises "Collective ops must be configured at program
startup"), so the first call should come first in the training entry point; the
strategy is memoised, so later calls (e.g. in run_fn) get the same object.
"""

import json
import logging
import os
import tempfile
from typing import Any, Callable, Dict, Mapping, Optional

import tensorflow as tf

from eta_ctr.config import (DISTRIBUTION_AUTO, DISTRIBUTION_DEFAULT, DISTRIBUTION_MIRRORED,
                            DISTRIBUTION_MULTI_WORKER, DISTRIBUTIONS)

log = logging.getLogger(__name__)

KINDS = DISTRIBUTIONS  # eta_ctr.config: auto, default, mirrored, multi_worker
# Task types that train; "evaluator" (a side-car) and "ps" do not all-reduce.
_TRAINING_TASKS = ("chief", "worker")

_FACTORIES: Dict[str, Callable[[], tf.distribute.Strategy]] = {
    DISTRIBUTION_DEFAULT: tf.distribute.get_strategy,
    DISTRIBUTION_MIRRORED: tf.distribute.MirroredStrategy,
    DISTRIBUTION_MULTI_WORKER: tf.distribute.MultiWorkerMirroredStrategy,
}
_cache: Dict[Any, tf.distribute.Strategy] = {}


def tf_config(environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
  """TF_CONFIG parsed ({} when unset or empty); raises ValueError when malformed."""
  text = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
  if not text:
    return {}
  try:
    parsed = json.loads(text)
  except json.JSONDecodeError as error:
    raise ValueError(f"TF_CONFIG is not JSON: {error}") from error
  if not isinstance(parsed, dict) or not isinstance(parsed.get("cluster", {}), dict):
    raise ValueError("TF_CONFIG must be a JSON object with a 'cluster' object")
  return parsed


def worker_count(config: Mapping[str, Any]) -> int:
  """Replicas that train together: the chief plus the workers of the cluster."""
  cluster = config.get("cluster", {})
  return sum(len(cluster.get(task, [])) for task in _TRAINING_TASKS)


def resolve_kind(kind: str = DISTRIBUTION_AUTO, environ: Optional[Mapping[str, str]] = None) -> str:
  """The concrete kind ('default', 'mirrored' or 'multi_worker') that `kind` means here."""
  if kind not in KINDS:
    raise ValueError(f"unknown distribution {kind!r}; expected one of {KINDS}")
  config = tf_config(environ)
  if config.get("cluster", {}).get("ps"):
    # Parameter-server training needs a coordinator loop; run_fn is not written for it.
    raise ValueError("TF_CONFIG names 'ps' tasks; parameter-server training is not "
                     "supported, use chief/worker replicas (MultiWorkerMirroredStrategy)")
  if kind != DISTRIBUTION_AUTO:
    return kind
  if worker_count(config) > 1:
    return DISTRIBUTION_MULTI_WORKER
  # MirroredStrategy over a single device only adds overhead: use it when there
  # are several local accelerators.
  return (DISTRIBUTION_MIRRORED if len(tf.config.list_logical_devices("GPU")) > 1
          else DISTRIBUTION_DEFAULT)


def strategy_from_environment(kind: str = DISTRIBUTION_AUTO,
                              environ: Optional[Mapping[str, str]] = None,
                              factories: Optional[Mapping[str, Callable]] = None
                              ) -> tf.distribute.Strategy:
  """The strategy for `kind` (see the module docstring), created once per process.

  Args:
    kind: one of KINDS.
    environ: the environment to read TF_CONFIG from (default os.environ).
    factories: {kind: constructor} overrides, for tests.
  """
  resolved = resolve_kind(kind, environ)
  key = (resolved, json.dumps(tf_config(environ), sort_keys=True))
  if factories is None and key in _cache:
    return _cache[key]
  strategy = dict(_FACTORIES, **(factories or {}))[resolved]()
  log.info("distribution %s -> %s, %d replicas in sync", kind, type(strategy).__name__,
           strategy.num_replicas_in_sync)
  if factories is None:
    _cache[key] = strategy
  return strategy


def is_chief(environ: Optional[Mapping[str, str]] = None) -> bool:
  """Whether this replica writes the outputs: the chief, else worker 0 of a chief-less
  cluster; True without TF_CONFIG (a single process)."""
  config = tf_config(environ)
  task = config.get("task") or {}
  task_type, index = task.get("type"), int(task.get("index", 0))
  if not task_type:
    return True
  if task_type == "chief":
    return True
  has_chief = bool(config.get("cluster", {}).get("chief"))
  return task_type == "worker" and index == 0 and not has_chief


def global_batch_size(per_replica_batch_size: int, strategy: tf.distribute.Strategy) -> int:
  """The batch a step consumes: Keras splits each dataset batch across the replicas."""
  return per_replica_batch_size * strategy.num_replicas_in_sync


def auto_shard(dataset: tf.data.Dataset, num_files: int, num_workers: int
               ) -> tf.data.Dataset:
  """Sets how MultiWorkerMirroredStrategy splits `dataset` between workers.

  FILE sharding (each worker reads its own files) needs at least one file per
  worker, and TF raises otherwise; with fewer files every worker reads all of
  them and keeps its 1/num_workers of the records (DATA).
  """
  policy = (tf.data.experimental.AutoShardPolicy.FILE if num_files >= num_workers
            else tf.data.experimental.AutoShardPolicy.DATA)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = policy
  return dataset.with_options(options)


def write_dir(path: str, environ: Optional[Mapping[str, str]] = None) -> str:
  """Where this replica writes an export or a log meant for `path`.

  Under MultiWorkerMirroredStrategy every worker must run the save (it may need
  collective ops), but only the chief's copy is kept: the others write to a
  temporary directory, which `discard_if_not_chief` removes.
  """
  if is_chief(environ):
    return path
  task = tf_config(environ).get("task", {})
  return tempfile.mkdtemp(prefix=f"{task.get('type', 'worker')}-{task.get('index', 0)}-")


def discard_if_not_chief(written: str, environ: Optional[Mapping[str, str]] = None):
  """Removes a non-chief replica's throw-away copy made under `write_dir`."""
  if not is_chief(environ) and tf.io.gfile.exists(written):
    tf.io.gfile.rmtree(written)
