"""Data-parallel training on Kubeflow: a TFJob entry point and Vertex AI worker pools.

Every replica runs the same `models.trainer.run_fn` in the same image; TF_CONFIG,
set by the Training Operator (TFJob) or by Vertex AI, tells each one its place
and `models.distribution` picks MultiWorkerMirroredStrategy from it.

TFJob entry point (kubeflow/tfjob.yaml runs it on every replica):

  python -m pipeline.kubeflow_training --config pipeline.yaml|eta_config.json
      --transform-graph  gs://ROOT/.../Transform/transform_graph/ID
      --transformed-examples gs://ROOT/.../Transform/transformed_examples/ID
      --serving-model-dir gs://BUCKET/models/NAME --model-run-dir gs://BUCKET/runs/NAME
      [--train-steps N] [--validation-steps N] [--distribution auto]

run_fn fits on Split-train and chooses its stopping step on Split-valid (Split-eval
is never read; without a valid split the whole budget is trained), as under the
TFX Trainer.
"""

import argparse
import json
import logging
import sys
from typing import Any, Dict, List, Optional

from eta_ctr import runtime
from eta_ctr.config import ETA_CONFIG_KEY

log = logging.getLogger(__name__)

CHIEF_POOL, WORKER_POOL = 0, 1  # Vertex AI: pool 0 is the chief, pool 1 the workers


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m pipeline.kubeflow_training",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", required=True,
                      help="an EtaConfig JSON file, or the compiled pipeline spec "
                           "(.yaml/.json) whose Trainer configuration to use")
  parser.add_argument("--transform-graph", required=True,
                      help="the Transform component's transform_graph artifact directory")
  parser.add_argument("--transformed-examples", required=True,
                      help="the Transform component's transformed_examples artifact "
                           "directory (holding Split-train/, Split-valid/, Split-eval/)")
  parser.add_argument("--serving-model-dir", required=True,
                      help="where the chief exports the SavedModel")
  parser.add_argument("--model-run-dir", required=True,
                      help="TensorBoard logs and metrics.json (the chief's)")
  parser.add_argument("--train-steps", type=int, help="default: the configuration's")
  parser.add_argument("--validation-steps", type=int,
                      help="batches per validation; default: the configuration's")
  parser.add_argument("--distribution", default="auto",
                      help="auto, default, mirrored or multi_worker (models/distribution.py)")
  return parser.parse_args(argv)


def eta_config_json(text: str) -> str:
  """The EtaConfig JSON in `text`: itself, or the Trainer's in a compiled pipeline spec."""
  if text.lstrip().startswith("{"):
    document = json.loads(text)
  else:
    import yaml
    document = yaml.safe_load(text)
  if "source" in document or "model" in document or "trainer" in document:
    return json.dumps(document)
  spec = document.get("pipelineSpec", document)
  trainer = spec["root"]["dag"]["tasks"]["Trainer"]
  runtime_value = trainer["inputs"]["parameters"]["custom_config"]["runtimeValue"]
  # Schema 2.0 writes constantValue.stringValue, 2.1 a plain `constant`.
  value = runtime_value.get("constant", runtime_value.get("constantValue"))
  value = value if isinstance(value, str) else value["stringValue"]
  return json.loads(value)[ETA_CONFIG_KEY]


def make_fn_args(args: argparse.Namespace, config_json: str):
  """The FnArgs the TFX Trainer would give run_fn for these artifacts (eval_files:
  pipeline.pipeline.trainer_eval_split's, the valid split)."""
  from tfx.components.trainer.fn_args_utils import FnArgs
  from components import events
  from eta_ctr.config import EtaConfig
  from pipeline.pipeline import trainer_eval_split
  config = EtaConfig.from_json(config_json)
  examples = args.transformed_examples.rstrip("/")
  return FnArgs(
      working_dir=args.model_run_dir,
      train_files=[f"{examples}/Split-{events.SPLIT_TRAIN}/*"],
      eval_files=[f"{examples}/Split-{trainer_eval_split(config.ingest)}/*"],
      train_steps=args.train_steps or config.trainer.train_steps,
      eval_steps=args.validation_steps or config.trainer.validation_steps,
      transform_graph_path=args.transform_graph,
      transform_output=args.transform_graph,
      serving_model_dir=args.serving_model_dir,
      eval_model_dir=args.serving_model_dir,
      model_run_dir=args.model_run_dir,
      custom_config={ETA_CONFIG_KEY: config_json})


def main(argv: Optional[List[str]] = None) -> int:
  runtime.prepare()  # before anything imports TensorFlow
  args = parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                      "%(message)s")
  # First, before any TF op: collective ops are configured at program start-up.
  from models import distribution
  strategy = distribution.strategy_from_environment(args.distribution)
  log.info("replica %s of %d (chief: %s)", distribution.tf_config().get("task", {}),
           max(distribution.worker_count(distribution.tf_config()), 1),
           distribution.is_chief())
  import tensorflow as tf
  with tf.io.gfile.GFile(args.config) as handle:
    config_json = eta_config_json(handle.read())
  from models.trainer import run_fn
  run_fn(make_fn_args(args, config_json))
  log.info("done (%s, %d replicas in sync)", type(strategy).__name__,
           strategy.num_replicas_in_sync)
  return 0


def vertex_training_args(project: str, image: str, replicas: int,
                         machine_type: str = "n1-standard-8",
                         accelerator_type: Optional[str] = None,
                         accelerator_count: int = 0) -> Dict[str, Any]:
  """The Vertex AI CustomJob for `replicas` data-parallel replicas of run_fn.

  Pool 0 is the chief (it exports), pool 1 the other workers; Vertex AI sets
  TF_CONFIG on each. Goes under TRAINING_ARGS_KEY of the Vertex Trainer's
  custom_config (see vertex_trainer_custom_config).
  """
  if replicas < 1:
    raise ValueError("replicas must be >= 1")
  machine: Dict[str, Any] = {"machine_type": machine_type}
  if accelerator_type and accelerator_count:
    machine.update(accelerator_type=accelerator_type, accelerator_count=accelerator_count)
  pool = {"machine_spec": machine, "container_spec": {"image_uri": image}}
  pools = [dict(pool, replica_count=1)]
  if replicas > 1:
    pools.append(dict(pool, replica_count=replicas - 1))
  return {"project": project, "job_spec": {"worker_pool_specs": pools}}


def vertex_trainer_custom_config(project: str, region: str, image: str, replicas: int,
                                 **machine) -> Dict[str, Any]:
  """custom_config entries that make tfx.extensions.google_cloud_ai_platform.Trainer
  run run_fn as a Vertex AI custom job of `replicas` workers (merge with eta_config)."""
  from tfx import v1 as tfx
  vertex = tfx.extensions.google_cloud_ai_platform
  return {
      vertex.ENABLE_VERTEX_KEY: True,
      vertex.VERTEX_REGION_KEY: region,
      vertex.TRAINING_ARGS_KEY: vertex_training_args(project, image, replicas, **machine),
  }


if __name__ == "__main__":
  sys.exit(main())
