"""The per-request stage profile runs what the server runs: same answer, every stage timed."""

from tensorflow_serving.apis import predict_pb2

from serving import request_profile as profile, testing
from serving.limits import Limits
from serving.servable import Servable


def test_stages_answer_exactly_what_the_server_answers(stubs, model_dir):
  predict, _ = stubs
  servable = Servable.load(f"{model_dir}/1", 1)
  for request in (testing.score_request(), testing.examples_request()):
    seconds, response = profile.run_stages(servable, request.SerializeToString(), Limits())
    assert list(seconds) == list(profile.STAGES) and min(seconds.values()) >= 0
    assert predict_pb2.PredictResponse.FromString(response) == predict.Predict(request)
  times = profile.profile_request(servable, testing.score_request().SerializeToString(), Limits(),
                                  warmup=1, min_calls=3, min_seconds=0)
  assert set(times) == set(profile.STAGES) | {profile.TOTAL}
  assert times[profile.TOTAL] > 0
