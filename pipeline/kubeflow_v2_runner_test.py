"""The compiled KFP v2 spec: kfp loads it, every component is there in the project image,
with the pipeline root, Beam args and import-path functions; nothing is read or built locally."""

import json
import os

import pytest
import yaml
from google.protobuf import json_format
from kfp import components as kfp_components
from kfp.pipeline_spec import pipeline_spec_pb2

from eta_ctr.config import EtaConfig, ModelConfig, SourceConfig
from pipeline import kubeflow_v2_runner as runner
from pipeline.pipeline import COMPONENT_IDS, PREPROCESSING_FN, RUN_FN

IMAGE = "europe-docker.pkg.dev/proj/eta/eta-ctr:1.2.3"
ROOT = "gs://eta-test/root"
SERVING = "gs://eta-test/serving"
LOG = "gs://eta-test/logs/*.csv"
BEAM_ARGS = ["--runner=DataflowRunner", "--project=eta-proj", "--region=europe-west4",
             "--temp_location=gs://eta-test/tmp", f"--sdk_container_image={IMAGE}"]
BEAM_COMPONENTS = ("ClickLogExampleGen", "StatisticsGen", "Transform", "Evaluator")
EXECUTOR_MODULE = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
CONFIG = EtaConfig(source=SourceConfig(format="csv", path=LOG),
                   model=ModelConfig(long_seq_len=256, short_seq_len=16, top_k=16))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
  """{'yaml': (path, job), 'json': (path, job)}, compiled once for the module."""
  out = tmp_path_factory.mktemp("spec")
  result = {}
  for fmt in ("yaml", "json"):
    path = str(out / f"pipeline.{fmt}")
    job = runner.compile_pipeline(CONFIG, path, image=IMAGE, pipeline_root=ROOT,
                                  serving_dir=SERVING, beam_pipeline_args=BEAM_ARGS)
    result[fmt] = (path, job)
  return result


def _parameter(task, name):
  value = task["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]
  return next(iter(value.values()))


def test_yaml_loads_back_in_kfp(compiled):
  path, _ = compiled["yaml"]
  with open(path) as handle:
    spec_dict = yaml.safe_load(handle)
  # What kfp.Client().create_run_from_pipeline_package does with the file.
  spec = json_format.ParseDict(spec_dict, pipeline_spec_pb2.PipelineSpec())
  assert spec.pipeline_info.name == runner.DEFAULT_PIPELINE_NAME
  assert spec.default_pipeline_root == ROOT
  component = kfp_components.load_component_from_file(path)
  assert component.name == runner.DEFAULT_PIPELINE_NAME


def test_json_is_a_pipeline_job(compiled):
  path, job = compiled["json"]
  with open(path) as handle:
    loaded = json.load(handle)
  assert loaded == job
  parsed = json_format.ParseDict(loaded, pipeline_spec_pb2.PipelineJob())
  assert parsed.runtime_config.gcs_output_directory == ROOT
  assert loaded["pipelineSpec"]["defaultPipelineRoot"] == ROOT


def test_every_component_is_a_task(compiled):
  for fmt in ("yaml", "json"):
    tasks = compiled[fmt][1]["pipelineSpec"]["root"]["dag"]["tasks"]
    for component_id in COMPONENT_IDS:
      # The resolver compiles to two tasks: ...-model-blessing-resolver, ...-model-resolver.
      assert any(name == component_id or name.startswith(component_id + "-")
                 for name in tasks), (fmt, component_id, sorted(tasks))


def test_executors_run_the_image_with_the_beam_args(compiled):
  executors = compiled["yaml"][1]["pipelineSpec"]["deploymentSpec"]["executors"]
  containers = {name.rsplit("_executor", 1)[0]: spec["container"]
                for name, spec in executors.items() if "container" in spec}
  assert set(containers) == set(COMPONENT_IDS) - {"latest_blessed_model_resolver"}
  for name, container in containers.items():
    assert container["image"] == IMAGE, name
    assert container["command"] == ["python", "-m", EXECUTOR_MODULE], name
  for name in BEAM_COMPONENTS:
    args = containers[name]["args"]
    assert args[-len(BEAM_ARGS):] == BEAM_ARGS, name
  # The ExampleGen driver (span and fingerprint) runs in the image too, with the Beam args.
  driver = containers["ClickLogExampleGen"]["lifecycle"]["preCacheCheck"]
  assert driver["args"][-len(BEAM_ARGS):] == BEAM_ARGS
  assert "components.example_gen.executor.Executor" in containers["ClickLogExampleGen"]["args"]


def test_functions_paths_and_config_travel_in_the_spec(compiled, tmp_path):
  tasks = compiled["yaml"][1]["pipelineSpec"]["root"]["dag"]["tasks"]
  assert _parameter(tasks["Trainer"], "run_fn") == RUN_FN
  assert _parameter(tasks["Transform"], "preprocessing_fn") == PREPROCESSING_FN
  assert "module_file" not in tasks["Trainer"]["inputs"]["parameters"]
  assert SERVING in _parameter(tasks["Pusher"], "push_destination")
  example_gen = tasks["ClickLogExampleGen"]
  assert _parameter(example_gen, "input_base") == "gs://eta-test/logs"
  assert json.loads(_parameter(example_gen, "input_config"))["splits"][0]["pattern"] == "*.csv"
  config = EtaConfig.from_json(json.loads(_parameter(tasks["Trainer"], "custom_config"))
                               ["eta_config"])
  assert config.model.long_seq_len == 256 and config.source.path == LOG


def test_compiling_reads_and_builds_nothing_locally(tmp_path):
  """No module-file wheel, no pipeline root, no data: only the spec file is written."""
  out = tmp_path / "spec"
  runner.compile_pipeline(CONFIG, str(out / "p.yaml"), image=IMAGE, pipeline_root=ROOT)
  assert os.listdir(out) == ["p.yaml"]
  assert sorted(os.listdir(tmp_path)) == ["spec"]


def test_defaults_and_rejections(tmp_path):
  job = runner.compile_pipeline(CONFIG, str(tmp_path / "p.yml"), image=IMAGE,
                                pipeline_root=ROOT + "/")
  pusher = job["pipelineSpec"]["root"]["dag"]["tasks"]["Pusher"]
  assert f"{ROOT}/serving" in _parameter(pusher, "push_destination")
  with pytest.raises(ValueError, match="spec format"):
    runner.compile_pipeline(CONFIG, str(tmp_path / "p.txt"), IMAGE, ROOT)
  with pytest.raises(ValueError, match="not a bucket path"):
    runner.compile_pipeline(CONFIG, str(tmp_path / "p.yaml"), IMAGE, "/tmp/root")
  local_log = CONFIG.replace(source=SourceConfig(format="csv", path="/data/log.csv"))
  with pytest.raises(ValueError, match="click log"):
    runner.compile_pipeline(local_log, str(tmp_path / "p.yaml"), IMAGE, ROOT)
  # A bucket directory (trailing '/') is read as all its files.
  directory = CONFIG.replace(source=SourceConfig(format="csv", path="gs://eta-test/logs/"))
  spec = (tmp_path / "dir.json")
  runner.compile_pipeline(directory, str(spec), IMAGE, ROOT)
  assert '"gs://eta-test/logs"' in spec.read_text() and '\\"pattern\\": \\"*\\"' in spec.read_text()
  with pytest.raises(ValueError, match="image"):
    runner.compile_pipeline(CONFIG, str(tmp_path / "p.yaml"), "", ROOT)
  runner.compile_pipeline(local_log, str(tmp_path / "local.yaml"), IMAGE, "/mnt/root",
                          allow_local_paths=True)
