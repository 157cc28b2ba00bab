"""The exported model's API: signature, input and output names.

models/export.py builds the signatures from these names and serving/ validates
and builds requests with them. It imports neither tf.Transform nor model code, so the
server and client can use it cheaply.
"""

import dataclasses
import json
import math
import posixpath
from typing import Dict, Sequence, Tuple

from components import events, side_features
from eta_ctr.config import FeatureSpec, features_from_dicts

DEFAULT_SIGNATURE = "serving_default"
SCORE_SIGNATURE = "score"

# serving_default (and Classify / Regress): serialized raw tf.Examples [B].
EXAMPLES = "examples"

# score: one user's history [N] (most recent first) and C candidates [C].
HIST_ITEM_IDS = events.HIST_ITEM_IDS
HIST_CATEGORIES = events.HIST_CATEGORIES
HIST_TIMESTAMPS = events.HIST_TIMESTAMPS
HISTORY_INPUTS = (HIST_ITEM_IDS, HIST_CATEGORIES, HIST_TIMESTAMPS)
ITEM_IDS = "item_ids"
CATEGORIES = "categories"
CANDIDATE_INPUTS = (ITEM_IDS, CATEGORIES)
REQUEST_TIME = "request_time"

# Outputs: [B] / [C] probabilities; for ETA also [C, k] positions (-1 = none)
# into the request's history and their Hamming distances.
PROBABILITIES = "probabilities"
RETRIEVED_POSITIONS = "retrieved_positions"
RETRIEVED_DISTANCES = "retrieved_distances"

# The inputs of `score` in order: the built-in ones, then those of the declared
# side features (score_feature_inputs), if any.
BUILT_IN_SCORE_INPUTS = HISTORY_INPUTS + CANDIDATE_INPUTS + (REQUEST_TIME,)

# How a declared side feature's values reach `score` (`per`):
PER_REQUEST = "request"      # user and context features: one value, shape []
PER_CANDIDATE = "candidate"  # item features: [C], parallel to item_ids
PER_HISTORY = "history"      # in_history item features: hist_NAME [N], parallel to hist_item_ids
# A missing numeric value in `score` is NaN (the example's NAME_missing = 1; the
# value is the declared default, else the train mean). A missing categorical is
# "" (the declared default, else an OOV bucket). A categorical_list value is one
# string, the values joined by the feature's separator (as in a CSV cell; "" =
# no value). Values are stripped of surrounding whitespace, as the ingest does.
MISSING_NUMBER = math.nan
STRING, FLOAT = "string", "float32"


@dataclasses.dataclass(frozen=True)
class ScoreInput:
  """One `score` input of a declared side feature.

  Attributes:
    name: the input's name: the feature's name, or hist_NAME for its history values.
    feature: the declared feature's name.
    dtype: STRING (categorical kinds) or FLOAT (numeric).
    per: PER_REQUEST (shape []), PER_CANDIDATE ([C]) or PER_HISTORY ([N]).
  """
  name: str
  feature: str
  dtype: str
  per: str


def score_feature_inputs(specs: Sequence) -> Tuple[ScoreInput, ...]:
  """The `score` inputs of the declared features (FeatureSpecs), in declaration
  order; () without any, and `score` is then exactly the built-in signature."""
  result = []
  for spec in specs:
    dtype = FLOAT if spec.kind == side_features.NUMERIC else STRING
    if spec.entity == side_features.ITEM:
      result.append(ScoreInput(spec.name, spec.name, dtype, PER_CANDIDATE))
      if spec.in_history:
        result.append(ScoreInput(side_features.HISTORY_PREFIX + spec.name, spec.name, dtype,
                                 PER_HISTORY))
    else:
      result.append(ScoreInput(spec.name, spec.name, dtype, PER_REQUEST))
  return tuple(result)


_BUILT_IN_SCORE_SPECS = {HIST_ITEM_IDS: (STRING, (None,)), HIST_CATEGORIES: (STRING, (None,)),
                         HIST_TIMESTAMPS: ("int64", (None,)), ITEM_IDS: (STRING, (None,)),
                         CATEGORIES: (STRING, (None,)), REQUEST_TIME: ("int64", ())}


def score_input_specs(specs: Sequence = ()) -> Dict[str, Tuple[str, Tuple]]:
  """{`score` input: (tf dtype name, shape)} in input order, for the declared
  features (FeatureSpecs): shape () is a scalar, (None,) a list of any length."""
  result = dict(_BUILT_IN_SCORE_SPECS)
  for entry in score_feature_inputs(specs):
    result[entry.name] = (entry.dtype, () if entry.per == PER_REQUEST else (None,))
  return result


def score_inputs(specs: Sequence = ()) -> Tuple[str, ...]:
  """Every input name of `score` for the declared features."""
  return BUILT_IN_SCORE_INPUTS + tuple(i.name for i in score_feature_inputs(specs))


def example_features(specs: Sequence = ()) -> Tuple[str, ...]:
  """The raw tf.Example features `serving_default` parses besides the built-in
  ones: NAME (+ NAME_missing for a numeric), hist_NAME (+ hist_NAME_missing),
  as the ingest writes them (components/side_features.py)."""
  return tuple(side_features.all_raw_features(specs))


# The declared features travel inside the SavedModel (models/export.py writes this
# file, the built-in server reads it to validate their values by the ingest's
# rules). assets.extra/ is TF Serving's place for files beside the model; stock
# tensorflow_model_server ignores this one. Paths join with "/" (gs:// too).
FEATURES_FILE = posixpath.join("assets.extra", "eta_features.json")
_FEATURES_KEY = "features"


def features_to_json(specs: Sequence[FeatureSpec]) -> str:
  """The declared features as FEATURES_FILE holds them: {"features": [FeatureSpec fields]}."""
  return json.dumps({_FEATURES_KEY: [dataclasses.asdict(spec) for spec in specs]},
                    sort_keys=True)


def features_from_json(text: str) -> Tuple[FeatureSpec, ...]:
  """FEATURES_FILE's text -> the FeatureSpecs, in declaration order.

  Raises:
    ValueError: not JSON, or not the form features_to_json writes, or an invalid feature.
  """
  data = json.loads(text)
  if not isinstance(data, dict) or not isinstance(data.get(_FEATURES_KEY), list):
    raise ValueError(f"expected {{\"{_FEATURES_KEY}\": [...]}}")
  return features_from_dicts(data[_FEATURES_KEY])


def write_features(export_dir: str, specs: Sequence[FeatureSpec]) -> None:
  """Writes the declared features into the SavedModel at export_dir
  (FEATURES_FILE); nothing without any. Any TF file system (gs:// too)."""
  if not specs:
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (this module is TF-free)
  path = f"{export_dir.rstrip('/')}/{FEATURES_FILE}"
  tf.io.gfile.makedirs(posixpath.dirname(path))
  with tf.io.gfile.GFile(path, "w") as handle:
    handle.write(features_to_json(specs))


def read_features(export_dir: str) -> Tuple[FeatureSpec, ...]:
  """The features the SavedModel at export_dir declares (FEATURES_FILE); () when
  it has none (no features, or exported before the file existed).

  Raises:
    ValueError: the file is there but is not a valid declaration.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (this module is TF-free)
  path = f"{export_dir.rstrip('/')}/{FEATURES_FILE}"
  if not tf.io.gfile.exists(path):
    return ()
  with tf.io.gfile.GFile(path, "r") as handle:
    try:
      return features_from_json(handle.read())
    except ValueError as error:
      raise ValueError(f"{path} is not a valid feature declaration ({error})") from None


# The raw tf.Example features (the ingest's), for building examples client-side.
USER_ID = events.USER_ID
ITEM_ID = events.ITEM_ID
CATEGORY = events.CATEGORY
TIMESTAMP = events.TIMESTAMP
