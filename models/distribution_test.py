"""Strategy selection from TF_CONFIG: parsing, kinds, chief, batch and sharding helpers."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from models import distribution


def _env(cluster=None, task=None):
  if cluster is None:
    return {}
  config = {"cluster": cluster}
  if task is not None:
    config["task"] = task
  return {"TF_CONFIG": json.dumps(config)}


TWO_WORKERS = {"worker": ["w0:2222", "w1:2222"]}
CHIEF_AND_WORKER = {"chief": ["c0:2222"], "worker": ["w0:2222"]}


class _Stub:
  """Stands in for a strategy: records which constructor was chosen."""

  def __init__(self, kind):
    self.kind = kind
    self.num_replicas_in_sync = 1


STUBS = {kind: (lambda kind=kind: _Stub(kind)) for kind in ("default", "mirrored",
                                                           "multi_worker")}


def test_tf_config_parsing():
  assert distribution.tf_config({}) == {}
  assert distribution.tf_config({"TF_CONFIG": "  "}) == {}
  assert distribution.tf_config(_env(TWO_WORKERS))["cluster"] == TWO_WORKERS
  with pytest.raises(ValueError, match="not JSON"):
    distribution.tf_config({"TF_CONFIG": "{cluster:"})
  with pytest.raises(ValueError, match="'cluster' object"):
    distribution.tf_config({"TF_CONFIG": json.dumps({"cluster": ["w0:1"]})})


def test_worker_count_counts_chief_and_workers_only():
  assert distribution.worker_count({}) == 0
  assert distribution.worker_count({"cluster": TWO_WORKERS}) == 2
  assert distribution.worker_count(
      {"cluster": dict(CHIEF_AND_WORKER, evaluator=["e0:2222"])}) == 2


@pytest.mark.parametrize("environ, expected", [
    ({}, "default"),  # one CPU: no mirroring
    (_env({"worker": ["w0:2222"]}, {"type": "worker", "index": 0}), "default"),
    (_env(TWO_WORKERS, {"type": "worker", "index": 1}), "multi_worker"),
    (_env(CHIEF_AND_WORKER, {"type": "chief", "index": 0}), "multi_worker"),
])
def test_auto_picks_multi_worker_only_for_a_cluster(environ, expected):
  assert distribution.resolve_kind("auto", environ) == expected
  strategy = distribution.strategy_from_environment("auto", environ, factories=STUBS)
  assert strategy.kind == expected


@pytest.mark.parametrize("kind", ["default", "mirrored", "multi_worker"])
def test_explicit_kind_wins_over_tf_config(kind):
  for environ in ({}, _env(TWO_WORKERS, {"type": "worker", "index": 0})):
    assert distribution.strategy_from_environment(kind, environ, factories=STUBS).kind == kind


def test_rejects_unknown_kind_and_parameter_servers():
  with pytest.raises(ValueError, match="unknown distribution"):
    distribution.resolve_kind("tpu", {})
  with pytest.raises(ValueError, match="parameter-server"):
    distribution.resolve_kind("auto", _env(dict(TWO_WORKERS, ps=["p0:2222"])))


@pytest.mark.parametrize("environ, chief", [
    ({}, True),
    (_env(TWO_WORKERS, {"type": "worker", "index": 0}), True),
    (_env(TWO_WORKERS, {"type": "worker", "index": 1}), False),
    (_env(CHIEF_AND_WORKER, {"type": "chief", "index": 0}), True),
    (_env(CHIEF_AND_WORKER, {"type": "worker", "index": 0}), False),
    (_env(CHIEF_AND_WORKER, {"type": "evaluator", "index": 0}), False),
])
def test_is_chief(environ, chief):
  assert distribution.is_chief(environ) is chief


def test_write_dir_keeps_only_the_chief_copy(tmp_path):
  target = str(tmp_path / "serving_model")
  assert distribution.write_dir(target, {}) == target
  worker = _env(TWO_WORKERS, {"type": "worker", "index": 1})
  scratch = distribution.write_dir(target, worker)
  assert scratch != target and os.path.isdir(scratch)
  distribution.discard_if_not_chief(scratch, worker)
  assert not os.path.exists(scratch)
  os.makedirs(target)
  distribution.discard_if_not_chief(target, {})
  assert os.path.isdir(target)


def test_real_local_strategies_and_batch_size():
  mirrored = distribution.strategy_from_environment("mirrored", {})
  assert isinstance(mirrored, tf.distribute.MirroredStrategy)
  assert distribution.strategy_from_environment("mirrored", {}) is mirrored  # memoised
  assert distribution.global_batch_size(256, mirrored) == 256 * mirrored.num_replicas_in_sync
  default = distribution.strategy_from_environment("default", {})
  assert default.num_replicas_in_sync == 1
  assert distribution.strategy_from_environment("auto", {}) is default  # one CPU
  with mirrored.scope():
    variable = tf.Variable(1.0)
  assert variable.numpy() == 1.0


def test_auto_shard_policy_follows_file_count():
  dataset = tf.data.Dataset.range(8)
  policy = tf.data.experimental.AutoShardPolicy
  options = distribution.auto_shard(dataset, num_files=4, num_workers=2).options()
  assert options.experimental_distribute.auto_shard_policy == policy.FILE
  options = distribution.auto_shard(dataset, num_files=1, num_workers=2).options()
  assert options.experimental_distribute.auto_shard_policy == policy.DATA


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("localhost", 0))
    return sock.getsockname()[1]


def test_multi_worker_strategy_on_a_one_worker_cluster():
  """The real MultiWorkerMirroredStrategy from TF_CONFIG, in a fresh process: it must
  be created before any TF op, which this test process has long since run."""
  script = textwrap.dedent("""
      from models import distribution
      strategy = distribution.strategy_from_environment("multi_worker")
      resolver = strategy.cluster_resolver
      print(type(strategy).__name__, strategy.num_replicas_in_sync, resolver.task_type,
            resolver.task_id, distribution.is_chief())
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps({
      "cluster": {"worker": [f"localhost:{_free_port()}"]},
      "task": {"type": "worker", "index": 0}}))
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, "-c", script], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split()[-5:] == ["CollectiveAllReduceStrategy", "1", "worker", "0",
                                        "True"]
