"""Fixtures for the serving unit tests: the toy SavedModel and a running server."""

import shutil

import grpc
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving import testing


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


@pytest.fixture
def server(model_dir):
  running = testing.start_server(model_dir)
  yield running
  running.stop()


@pytest.fixture
def stubs(server):
  """(PredictionServiceStub, ModelServiceStub) on a loopback channel to `server`."""
  channel = grpc.insecure_channel(server.grpc_target)
  yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
         model_service_pb2_grpc.ModelServiceStub(channel))
  channel.close()
