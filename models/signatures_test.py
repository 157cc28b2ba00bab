"""The export's tf.function arguments carry the API's input names (their order matters to
positional callers and to the signature's structured inputs)."""

import inspect

from models import export
from models import signatures


def test_names_match_the_export():
  score_args = list(inspect.signature(export.ServingModule.score.python_function).parameters)[1:]
  assert score_args == list(signatures.HISTORY_INPUTS + signatures.CANDIDATE_INPUTS +
                            (signatures.REQUEST_TIME,))
  assert list(inspect.signature(
      export.ServingModule.serve_examples.python_function).parameters)[1:] == [signatures.EXAMPLES]


def test_feature_names_cannot_take_the_signatures_names():
  from components import side_features
  assert side_features.SERVING_NAMES == {
      signatures.EXAMPLES, signatures.ITEM_IDS, signatures.CATEGORIES, signatures.REQUEST_TIME,
      signatures.PROBABILITIES, signatures.RETRIEVED_POSITIONS, signatures.RETRIEVED_DISTANCES}
  assert side_features.name_problem("item_ids") and side_features.name_problem("categories")


def test_score_feature_inputs():
  from eta_ctr.config import FeatureSpec
  specs = (FeatureSpec("age", "user", "categorical"), FeatureSpec("hour", "context", "numeric"),
           FeatureSpec("price", "item", "numeric", in_history=True),
           FeatureSpec("genres", "item", "categorical_list"))
  assert [(i.name, i.dtype, i.per) for i in signatures.score_feature_inputs(specs)] == [
      ("age", "string", "request"), ("hour", "float32", "request"),
      ("price", "float32", "candidate"), ("hist_price", "float32", "history"),
      ("genres", "string", "candidate")]
  assert signatures.score_inputs(specs)[:6] == signatures.BUILT_IN_SCORE_INPUTS
  assert signatures.score_feature_inputs(()) == ()
  assert set(signatures.example_features(specs)) == {
      "age", "hour", "hour_missing", "price", "price_missing", "hist_price",
      "hist_price_missing", "genres"}
