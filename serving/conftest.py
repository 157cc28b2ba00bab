"""Fixtures for the serving unit tests: the toy SavedModel and a running server."""

import os
import shutil

import grpc
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving import testing
from serving.server import ModelServer, ServerConfig


@pytest.fixture(scope="session")
def toy_exports(tmp_path_factory):
  """Two toy versions that score differently: {"a": path (bias 0), "b": path (bias 1)}."""
  root = tmp_path_factory.mktemp("toy")
  return {"a": testing.export_toy_model(str(root / "a")),
          "b": testing.export_toy_model(str(root / "b"), bias=1.0)}


@pytest.fixture
def model_dir(tmp_path, toy_exports):
  """A serving directory holding version 1 (toy model "a")."""
  base = tmp_path / "models"
  base.mkdir()
  shutil.copytree(toy_exports["a"], base / "1")
  return str(base)


def start_server(model_dir, **overrides) -> ModelServer:
  config = ServerConfig(model_dir, grpc_port=0, rest_port=0, poll_seconds=0.1,
                        grace_seconds=1.0, **overrides)
  server = ModelServer(config).start(wait_seconds=30)
  assert server.manager.current_version is not None, os.listdir(model_dir)
  return server


@pytest.fixture
def server(model_dir):
  running = start_server(model_dir)
  yield running
  running.stop()


@pytest.fixture
def stubs(server):
  """(PredictionServiceStub, ModelServiceStub) on a loopback channel to `server`."""
  channel = grpc.insecure_channel(server.grpc_target)
  yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
         model_service_pb2_grpc.ModelServiceStub(channel))
  channel.close()
