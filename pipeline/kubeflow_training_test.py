"""The TFJob entry point and the Vertex AI worker pools (no training is run)."""

import json
import os

import pytest
import yaml

from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig, TrainerConfig
from pipeline import kubeflow_v2_runner as runner, kubeflow_training as training

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = EtaConfig(source=SourceConfig(format="csv", path="gs://b/logs/*.csv"),
                   trainer=TrainerConfig(train_steps=123, validation_steps=7))
ARGV = ["--config", "cfg.json", "--transform-graph", "gs://b/root/Transform/transform_graph",
        "--transformed-examples", "gs://b/root/Transform/transformed_examples/",
        "--serving-model-dir", "gs://b/models/r1", "--model-run-dir", "gs://b/runs/r1"]


def test_fn_args_are_what_the_tfx_trainer_would_pass():
  args = training.parse_args(ARGV + ["--train-steps", "50"])
  fn_args = training.make_fn_args(args, CONFIG.to_json())
  assert fn_args.train_files == ["gs://b/root/Transform/transformed_examples/Split-train/*"]
  # The valid split: run_fn chooses its stopping step there, never on eval.
  assert fn_args.eval_files == ["gs://b/root/Transform/transformed_examples/Split-valid/*"]
  assert fn_args.transform_output == "gs://b/root/Transform/transform_graph"
  assert (fn_args.train_steps, fn_args.eval_steps) == (50, 7)
  assert fn_args.serving_model_dir == "gs://b/models/r1"
  assert EtaConfig.from_json(fn_args.custom_config["eta_config"]) == CONFIG
  # Without a valid split the Trainer's default eval split; run_fn does not read it.
  no_valid = CONFIG.replace(ingest=IngestConfig(valid_fraction=0))
  assert training.make_fn_args(args, no_valid.to_json()).eval_files == [
      "gs://b/root/Transform/transformed_examples/Split-eval/*"]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_config_from_a_compiled_spec_or_a_config_file(tmp_path, fmt):
  path = tmp_path / f"pipeline.{fmt}"
  runner.compile_pipeline(CONFIG, str(path), image="img:1", pipeline_root="gs://b/root")
  assert EtaConfig.from_json(training.eta_config_json(path.read_text())) == CONFIG
  assert EtaConfig.from_json(training.eta_config_json(CONFIG.to_json())) == CONFIG


def test_main_creates_the_strategy_then_calls_run_fn(tmp_path, monkeypatch):
  import models.trainer
  seen = {}
  monkeypatch.setattr(models.trainer, "run_fn", lambda fn_args: seen.update(args=fn_args))
  monkeypatch.delenv("TF_CONFIG", raising=False)
  config_path = tmp_path / "cfg.json"
  config_path.write_text(CONFIG.to_json())
  argv = [a if a != "cfg.json" else str(config_path) for a in ARGV]
  assert training.main(argv) == 0
  assert seen["args"].train_steps == 123


def test_vertex_pools_one_chief_and_the_workers():
  job = training.vertex_training_args("proj", "reg/eta:1", replicas=4,
                                      accelerator_type="NVIDIA_TESLA_T4",
                                      accelerator_count=1)
  assert job["project"] == "proj"
  chief, workers = job["job_spec"]["worker_pool_specs"]
  assert (chief["replica_count"], workers["replica_count"]) == (1, 3)
  assert chief["container_spec"] == {"image_uri": "reg/eta:1"}
  assert workers["machine_spec"]["accelerator_count"] == 1
  single = training.vertex_training_args("proj", "reg/eta:1", replicas=1)
  assert len(single["job_spec"]["worker_pool_specs"]) == 1
  with pytest.raises(ValueError):
    training.vertex_training_args("proj", "reg/eta:1", replicas=0)


def test_vertex_trainer_custom_config_keys():
  from tfx import v1 as tfx
  vertex = tfx.extensions.google_cloud_ai_platform
  config = training.vertex_trainer_custom_config("proj", "europe-west4", "reg/eta:1", 2)
  assert config[vertex.ENABLE_VERTEX_KEY] is True
  assert config[vertex.VERTEX_REGION_KEY] == "europe-west4"
  assert config[vertex.TRAINING_ARGS_KEY]["project"] == "proj"


def test_tfjob_manifest_runs_the_entry_point_on_chief_and_workers():
  with open(os.path.join(REPO, "kubeflow", "tfjob.yaml")) as handle:
    job = yaml.safe_load(handle)
  assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "TFJob")
  replicas = job["spec"]["tfReplicaSpecs"]
  assert replicas["Chief"]["replicas"] == 1 and replicas["Worker"]["replicas"] >= 1
  for spec in replicas.values():
    (container,) = spec["template"]["spec"]["containers"]
    assert container["name"] == "tensorflow"
    assert container["command"] == ["python", "-m", "pipeline.kubeflow_training"]
    args = training.parse_args(container["args"])
    assert args.distribution == "auto" and args.transformed_examples.startswith("gs://")
  json.dumps(job)  # plain data once the YAML anchors are resolved
