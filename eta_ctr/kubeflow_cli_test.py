"""`eta kubeflow compile`: flags -> EtaConfig -> spec, as eta_ctr.cli.main would call it."""

import argparse
import json

import pytest
import yaml

from eta_ctr import kubeflow_cli as cli

ROOT = "gs://eta-test/root"


def _eta_parser():
  """The `eta` parser with only the kubeflow command, wired as eta_ctr.cli would."""
  parser = argparse.ArgumentParser(prog="eta")
  cli.add_commands(parser.add_subparsers(dest="command", required=True))
  return parser


def _run(argv):
  args, extra = _eta_parser().parse_known_args(argv)
  return args.handler(args, extra)


def _tasks(path):
  with open(path) as handle:
    return yaml.safe_load(handle)["root"]["dag"]["tasks"]


def _trainer_config(path):
  value = _tasks(path)["Trainer"]["inputs"]["parameters"]["custom_config"]
  text = next(iter(value["runtimeValue"]["constantValue"].values()))
  return json.loads(json.loads(text)["eta_config"])


def test_compile_with_model_flags_and_beam_args(tmp_path, capsys):
  out = tmp_path / "pipeline.yaml"
  code = _run(["kubeflow", "compile", "--output", str(out), "--image", "reg/eta:1",
               "--pipeline-root", ROOT, "--data-path", "gs://eta-test/logs/*.csv",
               "--long-seq-len", "512", "--top-k", "32", "--train-steps", "50",
               "--max-history", "512", "--beam-arg=--runner=DataflowRunner",
               "--beam-arg=--region=europe-west4", "--temp_location=gs://eta-test/tmp"])
  assert code == 0
  assert "wrote" in capsys.readouterr().out
  config = _trainer_config(out)
  assert config["model"]["long_seq_len"] == 512 and config["model"]["top_k"] == 32
  assert config["trainer"]["train_steps"] == 50
  assert config["ingest"]["max_history"] == 512
  assert config["source"] == {"format": "csv", "path": "gs://eta-test/logs/*.csv",
                              "min_positive_rating": 4.0}
  with open(out) as handle:
    executors = yaml.safe_load(handle)["deploymentSpec"]["executors"]
  args = executors["Transform_executor"]["container"]["args"]
  assert args[-3:] == ["--runner=DataflowRunner", "--region=europe-west4",
                       "--temp_location=gs://eta-test/tmp"]
  assert executors["Trainer_executor"]["container"]["image"] == "reg/eta:1"


def test_movielens_directory_gets_its_settings(tmp_path):
  out = tmp_path / "p.json"
  assert _run(["kubeflow", "compile", "--output", str(out), "--pipeline-root", ROOT,
               "--data", "gs://eta-test/ml-100k", "--format", "movielens"]) == 0
  with open(out) as handle:
    tasks = json.load(handle)["pipelineSpec"]["root"]["dag"]["tasks"]
  example_gen = tasks["ClickLogExampleGen"]["inputs"]["parameters"]
  assert example_gen["input_base"]["runtimeValue"]["constantValue"]["stringValue"] == (
      "gs://eta-test/ml-100k")
  config = json.loads(json.loads(tasks["Trainer"]["inputs"]["parameters"]["custom_config"]
                                 ["runtimeValue"]["constantValue"]["stringValue"])
                      ["eta_config"])
  assert config["model"]["long_seq_len"] == 256  # EtaConfig.for_movielens


def test_image_from_environment(tmp_path, monkeypatch):
  monkeypatch.setenv(cli.IMAGE_ENV, "reg/from-env:7")
  out = tmp_path / "p.yaml"
  assert _run(["kubeflow", "compile", "--output", str(out), "--pipeline-root", ROOT,
               "--data-path", "gs://eta-test/log.jsonl"]) == 0
  with open(out) as handle:
    executors = yaml.safe_load(handle)["deploymentSpec"]["executors"]
  assert {e["container"]["image"] for e in executors.values() if "container" in e} == {
      "reg/from-env:7"}


@pytest.mark.parametrize("argv, message", [
    (["--pipeline-root", "/local/root", "--data-path", "gs://b/l.csv"], "bucket path"),
    (["--pipeline-root", ROOT, "--data-path", "gs://b/logs/part-*"], "--format"),
])
def test_errors_are_one_line_exits(tmp_path, argv, message):
  with pytest.raises(SystemExit, match=message):
    _run(["kubeflow", "compile", "--output", str(tmp_path / "p.yaml")] + argv)


def test_compile_works_with_no_flags_but_output(tmp_path, capsys):
  from eta_ctr import cli
  output = tmp_path / "pipeline.json"
  assert cli.main(["kubeflow", "compile", "--output", str(output)]) == 0
  assert output.exists()
  assert "placeholders" in capsys.readouterr().out
