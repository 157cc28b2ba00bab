"""The real `tensorflow_model_server`: its config files and command line.

`eta serve` execs it when it is on PATH and can honour the flags. Two of its
limits shape what is generated:

  - It has no bind-address flag: gRPC (and REST) listen on every interface. It
    is therefore only used with --host 0.0.0.0 (or ::); on the default
    127.0.0.1 the built-in server runs instead.
  - Its session batching concatenates each input of *every* signature along
    dimension 0. `score` takes a scalar request_time and a history and
    candidates of different lengths, so with batching on every `score` request
    fails ("Batching session Run() input tensors must have at least one
    dimension"). batching.config is always written, but batching is enabled only
    with --enable-batching, for deployments that call serving_default alone.
    (The built-in server batches serving_default alone, so `score` keeps
    working there with batching on: serving/batching.py.)

It does not enforce --max-candidates / --max-history; --max-message-mb becomes
its gRPC max receive message length.
"""

import math
import os
import shutil
from typing import Dict, List, Mapping, Optional

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.batching import BatchingConfig
from serving.server import ServerConfig

BINARY = "tensorflow_model_server"
MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching.config"
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")

# Request batching for serving_default: up to 256 examples per batch, waiting
# at most 2 ms for a batch to fill (serving/batching.py: the same parameters
# drive the built-in server's batching).
BATCHING_PARAMETERS = BatchingConfig().parameters()


def find_binary() -> Optional[str]:
  return shutil.which(BINARY)


def binds_every_interface(host: str) -> bool:
  return host in WILDCARD_HOSTS


def models_config(model_name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
  """A ModelServerConfig: one TensorFlow model, its newest version served."""
  config = model_server_config_pb2.ModelServerConfig()
  model = config.model_config_list.config.add(name=model_name, base_path=base_path,
                                               model_platform="tensorflow")
  model.model_version_policy.latest.num_versions = 1
  return config


def batching_config(parameters: Optional[Mapping[str, int]] = None) -> str:
  """A BatchingParameters text proto (each field an Int64Value wrapper).

  Written by hand: tensorflow-serving-api ships no session_bundle_config_pb2
  (BatchingParameters lives in the model server's own protos), and four integer
  wrappers need no escaping.
  """
  parameters = BATCHING_PARAMETERS if parameters is None else parameters
  return "".join(f"{name} {{ value: {int(value)} }}\n" for name, value in parameters.items())


def absolute_base_path(model_dir: str) -> str:
  # TF Serving needs an absolute path (or a URI such as gs://bucket/models/eta).
  return model_dir if "://" in model_dir else os.path.abspath(model_dir)


def write_config_files(config: ServerConfig, config_dir: str) -> Dict[str, str]:
  """Writes models.config and batching.config; returns {file name: path}."""
  os.makedirs(config_dir, exist_ok=True)
  models = models_config(config.model_name, absolute_base_path(config.model_dir))
  batching = config.batching.parameters() if config.batching is not None else None
  contents = {MODELS_CONFIG: text_format.MessageToString(models),
              BATCHING_CONFIG: batching_config(batching)}
  paths = {}
  for name, text in contents.items():
    paths[name] = os.path.join(config_dir, name)
    with open(paths[name], "w") as handle:
      handle.write(text)
  return paths


def command(binary: str, config: ServerConfig, paths: Dict[str, str],
            enable_batching: Optional[bool] = None) -> List[str]:
  """The argv that serves `config` with the real binary (batching: as the config
  says, unless enable_batching says otherwise)."""
  if enable_batching is None:
    enable_batching = config.batching is not None
  argv = [
      binary,
      f"--port={config.grpc_port}",
      # 0 turns TF Serving's REST API off, as --rest-port 0 does for `eta serve`.
      f"--rest_api_port={config.rest_port or 0}",
      f"--model_config_file={paths[MODELS_CONFIG]}",
      f"--file_system_poll_wait_seconds={max(1, math.ceil(config.poll_seconds))}",
      f"--grpc_channel_arguments=grpc.max_receive_message_length="
      f"{config.limits.max_message_bytes}",
      "--enable_model_warmup=true",
  ]
  if config.intra_op_threads:
    argv.append(f"--tensorflow_intra_op_parallelism={config.intra_op_threads}")
  if config.inter_op_threads:
    argv.append(f"--tensorflow_inter_op_parallelism={config.inter_op_threads}")
  if enable_batching:
    # The parameters file is refused unless batching is enabled too.
    argv += ["--enable_batching=true", f"--batching_parameters_file={paths[BATCHING_CONFIG]}"]
  return argv


def exec_binary(argv: List[str]):
  """Replaces this process with the model server (never returns)."""
  os.execv(argv[0], argv)
