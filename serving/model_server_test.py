"""The real tensorflow_model_server's command line and config files (not run here)."""

import os

from google.protobuf import (descriptor_pb2, descriptor_pool, message_factory, text_format,
                             wrappers_pb2)
from tensorflow_serving.config import model_server_config_pb2

from serving import model_server
from serving.limits import Limits
from serving.server import ServerConfig


def _batching_parameters():
  """The fields of TF Serving's BatchingParameters that batching.config sets (the
  tensorflow-serving-api wheel does not ship session_bundle_config_pb2)."""
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
  proto = descriptor_pb2.FileDescriptorProto(
      name="batching_parameters_test.proto", package="tensorflow.serving", syntax="proto3",
      dependency=["google/protobuf/wrappers.proto"])
  message = proto.message_type.add(name="BatchingParameters")
  field = descriptor_pb2.FieldDescriptorProto
  for number, name in enumerate(("max_batch_size", "batch_timeout_micros",
                                 "max_enqueued_batches", "num_batch_threads"), 1):
    message.field.add(name=name, number=number, type=field.TYPE_MESSAGE,
                      label=field.LABEL_OPTIONAL, type_name=".google.protobuf.Int64Value")
  pool.Add(proto)
  return message_factory.MessageFactory(pool).GetPrototype(
      pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))()


def test_config_files_parse_as_tf_serving_protos(tmp_path):
  config = ServerConfig(model_dir="relative/serving", model_name="eta", grpc_port=9000,
                        rest_port=9001, poll_seconds=0.5, limits=Limits(max_message_bytes=8 << 20))
  paths = model_server.write_config_files(config, str(tmp_path))
  with open(paths[model_server.MODELS_CONFIG]) as handle:
    parsed = text_format.Parse(handle.read(), model_server_config_pb2.ModelServerConfig())
  (model,) = parsed.model_config_list.config
  assert model.name == "eta" and model.model_platform == "tensorflow"
  assert model.base_path == os.path.abspath("relative/serving")
  assert model.model_version_policy.latest.num_versions == 1
  with open(paths[model_server.BATCHING_CONFIG]) as handle:
    batching = text_format.Parse(handle.read(), _batching_parameters())
  assert {field.name: value.value for field, value in batching.ListFields()} == {
      "max_batch_size": 256, "batch_timeout_micros": 2000, "max_enqueued_batches": 64,
      "num_batch_threads": 4}

  argv = model_server.command("/usr/bin/tensorflow_model_server", config, paths)
  assert argv[0] == "/usr/bin/tensorflow_model_server"
  flags = dict(arg[2:].split("=", 1) for arg in argv[1:])
  assert flags["port"] == "9000" and flags["rest_api_port"] == "9001"
  assert flags["model_config_file"] == paths[model_server.MODELS_CONFIG]
  assert flags["file_system_poll_wait_seconds"] == "1"
  assert flags["grpc_channel_arguments"] == f"grpc.max_receive_message_length={8 << 20}"
  assert "enable_batching" not in flags and "batching_parameters_file" not in flags
  batched = model_server.command("tfms", config, paths, enable_batching=True)
  assert "--enable_batching=true" in batched
  assert f"--batching_parameters_file={paths[model_server.BATCHING_CONFIG]}" in batched


def test_uris_are_kept_and_only_wildcard_hosts_use_the_binary():
  assert model_server.absolute_base_path("gs://bucket/serving") == "gs://bucket/serving"
  assert model_server.binds_every_interface("0.0.0.0")
  assert not model_server.binds_every_interface("127.0.0.1")


def test_names_and_paths_are_escaped_by_text_format(tmp_path):
  config = ServerConfig(model_dir='gs://bucket/my "models"\\x', model_name='a"b\\c')
  paths = model_server.write_config_files(config, str(tmp_path))
  with open(paths[model_server.MODELS_CONFIG]) as handle:
    (model,) = text_format.Parse(handle.read(), model_server_config_pb2.ModelServerConfig()
                                 ).model_config_list.config
  assert (model.name, model.base_path) == ('a"b\\c', 'gs://bucket/my "models"\\x')
