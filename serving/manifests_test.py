"""kubeflow/serving/: plain YAML whose ports, args and config agree with each other
and with what `eta serve` would give tensorflow_model_server."""

import os

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import model_server
from serving.server import ServerConfig

MANIFESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "kubeflow", "serving")


def _load():
  documents = {}
  for name in sorted(os.listdir(MANIFESTS)):
    if name.endswith(".yaml"):
      with open(os.path.join(MANIFESTS, name)) as handle:
        for document in yaml.safe_load_all(handle):
          documents[document["kind"]] = document
  return documents


def test_manifests_are_consistent():
  docs = _load()
  kinds = {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim", "Kustomization"}
  assert kinds <= set(docs)
  kustomized = set(docs["Kustomization"]["resources"])
  assert kustomized == {n for n in os.listdir(MANIFESTS)
                        if n.endswith(".yaml") and n != "kustomization.yaml"}

  deployment, service, config_map = docs["Deployment"], docs["Service"], docs["ConfigMap"]
  pod = deployment["spec"]["template"]
  assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
  assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
  (container,) = pod["spec"]["containers"]
  assert container["image"].startswith("tensorflow/serving:")
  assert container["command"] == [model_server.BINARY]

  ports = {p["name"]: p["containerPort"] for p in container["ports"]}
  assert ports == {"grpc": 8500, "http": 8501}
  assert {(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
      ("grpc", 8500, "grpc"), ("http", 8501, "http")}

  mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
  volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
  assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
  assert volumes["models"]["persistentVolumeClaim"]["claimName"] == \
      docs["PersistentVolumeClaim"]["metadata"]["name"]
  model_dir = mounts["models"]
  paths = {name: f"{mounts['config']}/{name}"
           for name in (model_server.MODELS_CONFIG, model_server.BATCHING_CONFIG)}

  # The ConfigMap holds what `eta serve` writes for the mounted model dir (the
  # same ModelServerConfig, however laid out), and the args are exactly the
  # command it would exec.
  assert set(config_map["data"]) == {model_server.MODELS_CONFIG, model_server.BATCHING_CONFIG}
  assert text_format.Parse(config_map["data"][model_server.MODELS_CONFIG],
                           model_server_config_pb2.ModelServerConfig()) == \
      model_server.models_config("eta", model_dir)
  assert config_map["data"][model_server.BATCHING_CONFIG] == model_server.batching_config()
  expected = model_server.command(model_server.BINARY, ServerConfig(
      model_dir=model_dir, grpc_port=ports["grpc"], rest_port=ports["http"]), paths)
  assert container["args"] == expected[1:]
  assert pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/v1/models/eta"
