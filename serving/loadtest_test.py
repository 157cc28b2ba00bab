"""The load and fuzz tool against the toy model: requests succeed, malformed ones never do."""

from serving import loadtest, testing


def test_measure_counts_successful_requests(server):
  row = loadtest.measure(server.grpc_target, testing.score_request(), clients=2, seconds=1.0)
  assert row["requests"] > 0 and row["failed"] == 0
  assert 0 < row["p50_ms"] <= row["p99_ms"]


def test_fuzz_gets_only_error_statuses_and_the_server_survives(server):
  result = loadtest.fuzz(server.grpc_target, testing.score_request(), count=200, seed=1)
  assert result["server_alive_after"] and result["crashes"] == 0
  assert result["good_requests_failed_in_between"] == 0
  assert sum(result["status_codes"].values()) == 200
  assert set(result["status_codes"]) <= {"INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED"}


def test_serving_default_requests_carry_one_example_per_candidate(server):
  request = loadtest.query_request("eta", "serving_default", testing.QUERY)
  assert request.model_spec.signature_name == "serving_default"
  assert request.inputs["examples"].tensor_shape.dim[0].size == len(testing.QUERY.candidates)
  row = loadtest.measure(server.grpc_target, request, clients=2, seconds=0.5)
  assert row["requests"] > 0 and row["failed"] == 0
