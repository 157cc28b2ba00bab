"""Cross-request batching: batched answers equal unbatched ones exactly, a bad
request fails alone, a partial batch leaves on its timeout, and the stock client
sees nothing different."""

import concurrent.futures
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

from models import signatures
from serving import requests, testing
from serving.batching import Batcher, BatchingConfig, rows_of
from serving.errors import ServingError
from serving.servable import Servable

DEFAULT = signatures.DEFAULT_SIGNATURE


def _examples(*items: str, history=("h1", "h2")) -> np.ndarray:
  query = requests.ScoreQuery(
      history=[requests.Behaviour(h, "c", 90 - i) for i, h in enumerate(history)],
      candidates=[requests.Candidate(item, "c") for item in items], request_time=100)
  array = np.empty(len(items), dtype=object)
  array[:] = requests.examples_for_query(query)
  return array


def _concurrently(calls):
  """Runs every zero-argument call on its own thread at once; their results (or errors)."""
  with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
    futures = [pool.submit(call) for call in calls]
    return [f.exception() or f.result() for f in futures]


class _Recorder:
  """A stand-in for Servable.run: doubles the numbers, records each call's rows,
  and fails any call that contains a poisoned row."""

  def __init__(self):
    self.calls = []
    self.lock = threading.Lock()

  def __call__(self, servable, signature, inputs):
    values = inputs["x"]
    with self.lock:
      self.calls.append(len(values))
    if (values < 0).any():
      raise ValueError("negative input")
    return {"y": values * 2.0, "first": np.repeat(values[:1], len(values))}


def _batcher(run, **config):
  return Batcher(BatchingConfig(**config), run=run).start()


def test_requests_in_one_window_run_once_and_get_their_own_rows():
  run = _Recorder()
  batcher = _batcher(run, max_batch_size=6, batch_timeout_micros=5_000_000, num_batch_threads=1)
  try:
    inputs = [np.array([1.0, 2.0]), np.array([3.0]), np.array([4.0, 5.0, 6.0])]
    results = _concurrently([lambda x=x: batcher.run("v1", DEFAULT, {"x": x}) for x in inputs])
    assert run.calls == [6]  # full at 6 rows: no waiting for the 5 s timeout
    for x, result in zip(inputs, results):
      np.testing.assert_array_equal(result["y"], x * 2.0)
    # "first" is the batch's first row: one value for all, so they ran as one batch.
    assert len({float(result["first"][0]) for result in results}) == 1
  finally:
    batcher.stop()


def test_a_failing_batch_is_rerun_request_by_request_so_only_the_bad_one_fails():
  run = _Recorder()
  batcher = _batcher(run, max_batch_size=4, batch_timeout_micros=5_000_000, num_batch_threads=1)
  try:
    inputs = [np.array([1.0]), np.array([-1.0]), np.array([2.0, 3.0])]
    results = _concurrently([lambda x=x: batcher.run("v1", DEFAULT, {"x": x}) for x in inputs])
    assert isinstance(results[1], ValueError)
    np.testing.assert_array_equal(results[0]["y"], [2.0])
    np.testing.assert_array_equal(results[2]["y"], [4.0, 6.0])
    assert sorted(run.calls) == [1, 1, 2, 4]  # the batch, then each alone
  finally:
    batcher.stop()


def test_the_timeout_flushes_a_partial_batch():
  run = _Recorder()
  batcher = _batcher(run, max_batch_size=100, batch_timeout_micros=50_000, num_batch_threads=1)
  try:
    started = time.monotonic()
    result = batcher.run("v1", DEFAULT, {"x": np.array([1.0, 2.0])})
    waited = time.monotonic() - started
    np.testing.assert_array_equal(result["y"], [2.0, 4.0])
    assert run.calls == [2] and 0.045 <= waited < 5.0
  finally:
    batcher.stop()


def test_what_cannot_share_a_batch_runs_alone_and_versions_never_mix():
  run = _Recorder()
  batcher = _batcher(run, max_batch_size=4, batch_timeout_micros=200_000, num_batch_threads=2)
  try:
    # As large as a batch: at once, on the caller's thread; a scalar: no example axis.
    batcher.run("v1", DEFAULT, {"x": np.arange(4.0)})
    assert run.calls == [4]
    assert rows_of({"x": np.array(1.0)}) is None
    assert rows_of({"x": np.zeros(2), "z": np.zeros(3)}) is None
    run.calls.clear()
    _concurrently([lambda: batcher.run("v1", DEFAULT, {"x": np.array([1.0])}),
                   lambda: batcher.run("v2", DEFAULT, {"x": np.array([2.0])})])
    assert sorted(run.calls) == [1, 1]  # two versions: two batches
  finally:
    batcher.stop()
  with pytest.raises(ServingError, match="shutting down"):
    batcher.run("v1", DEFAULT, {"x": np.array([1.0])})


def test_config_refuses_bad_values_and_the_score_signature():
  with pytest.raises(ValueError, match="max_batch_size must be at least 1"):
    BatchingConfig(max_batch_size=0)
  with pytest.raises(ValueError, match="batch_timeout_micros"):
    BatchingConfig(batch_timeout_micros=-1)
  with pytest.raises(ValueError, match="'score' cannot be batched"):
    BatchingConfig(signatures=("serving_default", "score"))
  assert BatchingConfig().parameters() == {"max_batch_size": 256, "batch_timeout_micros": 2000,
                                           "max_enqueued_batches": 64, "num_batch_threads": 4}


def test_batched_results_equal_unbatched_ones_exactly_on_the_toy_model(toy_exports):
  servable = Servable.load(toy_exports["a"], 1)
  batcher = Batcher(BatchingConfig(max_batch_size=7, batch_timeout_micros=5_000_000,
                                   num_batch_threads=1)).start()
  try:
    requests_ = [_examples("i1", "i2"), _examples("new-item", history=("h1",)),
                 _examples("a", "b", "c", "d", history=("h3", "h2", "h1"))]
    alone = [servable.run(DEFAULT, {signatures.EXAMPLES: x}) for x in requests_]
    batched = _concurrently([lambda x=x: batcher.run(servable, DEFAULT, {signatures.EXAMPLES: x})
                             for x in requests_])
    assert batcher.batches_run == 1 and batcher.requests_batched == 3
    for one, many in zip(alone, batched):
      assert set(one) == set(many)
      for name in one:
        assert one[name].dtype == many[name].dtype
        np.testing.assert_array_equal(one[name], many[name])  # exactly, not approximately
  finally:
    batcher.stop()


@pytest.fixture
def batching_server(model_dir):
  running = testing.start_server(model_dir, batching=BatchingConfig(
      max_batch_size=64, batch_timeout_micros=1_000_000, num_batch_threads=2))
  yield running
  running.stop()


def test_stock_client_through_a_batching_server(batching_server, model_dir):
  channel = grpc.insecure_channel(batching_server.grpc_target)
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  try:
    unbatched = Servable.load(f"{model_dir}/1", 1)
    arrays = [_examples("i1"), _examples("i2", "i3"), _examples("x", "y", "z", history=("h9",))]
    good = [requests.predict_request("eta", "", {signatures.EXAMPLES: x}) for x in arrays]
    bad = requests.predict_request("eta", "", {signatures.EXAMPLES: testing.strings("\x00junk")})
    results = _concurrently([lambda r=r: stub.Predict(r, timeout=30) for r in good + [bad]])
    assert isinstance(results[-1], grpc.RpcError)
    assert results[-1].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a serialized tf.Example" in results[-1].details()
    for array, response in zip(arrays, results[:-1]):
      expected = unbatched.run(DEFAULT, {signatures.EXAMPLES: array})
      np.testing.assert_array_equal(testing.outputs(response)["probabilities"],
                                    expected["probabilities"])
    batcher = batching_server.batcher
    assert batcher.requests_batched == 3  # the bad one never reached the batcher ...
    assert batcher.batches_run < 3        # ... and good ones shared a batch
    # `score` is never batched, and Classify goes through the batcher too.
    assert stub.Predict(testing.score_request(), timeout=30).model_spec.signature_name == "score"
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "eta"
    for serialized in _examples("i1", "i2"):
      classify.input.example_list.examples.add().ParseFromString(serialized)
    assert len(stub.Classify(classify, timeout=30).result.classifications) == 2
  finally:
    channel.close()
