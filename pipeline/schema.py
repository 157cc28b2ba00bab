"""The pipeline's curated schema, generated from the configuration (never inferred).

The ingest decides what every tf.Example holds (components/histories.py), so the
schema follows from `IngestConfig` alone and cannot depend on what one split
happens to contain (an inferred schema marks every feature DEPRECATED when a
split is empty, and Transform then drops them).

  feature                          type   values per example       Transform gets
  user_id, item_id, category       BYTES  exactly 1 (shape [1])    dense [B, 1]
  timestamp                        INT    exactly 1, >= 0          dense [B, 1]
  label                            INT    exactly 1, in {0, 1}     dense [B, 1]
  hist_item_ids, hist_categories   BYTES  0..max_history           SparseTensor [B, None]
  hist_timestamps                  INT    0..max_history, >= 0     SparseTensor [B, None]
  hist_labels (only with           INT    0..max_history, {0, 1}   SparseTensor [B, None]
    history_includes_non_clicked)

Every feature is in every example (presence min_fraction 1; an empty history is
an empty list, not a missing feature), and no feature has a lifecycle stage.

Declared side features (EtaConfig.features, components/side_features.py) add
their raw features: a categorical is BYTES and a numeric FLOAT with exactly one
value (dense [B, 1]), a numeric's NAME_missing INT in {0, 1} likewise; a
categorical_list is BYTES with any number of values (SparseTensor); an in_history
item feature's hist_NAME (and hist_NAME_missing) has 0..max_history values.

These are the representations SchemaGen(infer_feature_shape=True) gave before,
so preprocessing_fn reads the same tensors. Every split (train, valid, eval)
must hold at least one example (dataset_constraints), and `category` carries the drift threshold the
validation gate applies between the train and eval splits (pipeline/drift.py).
"""

from typing import Any, Dict, List, Sequence

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import events, side_features
from components.split_check import MIN_SPLIT_EXAMPLES
from eta_ctr.config import IngestConfig

BYTES, INT, FLOAT = schema_pb2.BYTES, schema_pb2.INT, schema_pb2.FLOAT
_SIDE_TYPES = {"bytes": BYTES, "int64": INT, "float": FLOAT}
# Features with exactly one value per example, and their types.
SCALAR_FEATURES: Dict[str, int] = {
    events.USER_ID: BYTES, events.ITEM_ID: BYTES, events.CATEGORY: BYTES,
    events.TIMESTAMP: INT, events.LABEL: INT}
# The history lists (0..max_history values, most recent first).
HISTORY_FEATURES: Dict[str, int] = {
    events.HIST_ITEM_IDS: BYTES, events.HIST_CATEGORIES: BYTES, events.HIST_TIMESTAMPS: INT}
# Integer features and their allowed range (min, max); None = unbounded.
INT_RANGES = {events.TIMESTAMP: (0, None), events.HIST_TIMESTAMPS: (0, None),
              events.LABEL: (0, 1), events.HIST_LABELS: (0, 1)}
# L-infinity distance between the train and eval distributions of `category`
# above which the run summary reports a drift (TFDV's drift comparator).
CATEGORY_DRIFT_THRESHOLD = 0.1
# What the ingest already requires of each split (components/split_check.py).
MIN_EXAMPLES_PER_SPLIT = MIN_SPLIT_EXAMPLES
SCHEMA_FILE = "schema.pbtxt"


def feature_types(config: IngestConfig, features: Sequence[Any] = ()) -> Dict[str, int]:
  """{feature name: schema_pb2.FeatureType} of every example the ingest writes
  (with the declared side `features`, FeatureSpecs)."""
  types = {**SCALAR_FEATURES, **HISTORY_FEATURES}
  if config.history_includes_non_clicked:
    types[events.HIST_LABELS] = INT
  for name, (dtype, _) in side_features.all_raw_features(features).items():
    types[name] = _SIDE_TYPES[dtype]
  return types


def feature_names(config: IngestConfig, features: Sequence[Any] = ()) -> List[str]:
  """The sorted names of the features every example has under `config`."""
  return sorted(feature_types(config, features))


def build_schema(config: IngestConfig, features: Sequence[Any] = ()) -> schema_pb2.Schema:
  """The curated schema of the ingest's tf.Examples under `config` and the
  declared side `features` (see the module doc)."""
  schema = schema_pb2.Schema()
  side_shapes = {name: shape for name, (_, shape)
                 in side_features.all_raw_features(features).items()}
  for name, feature_type in sorted(feature_types(config, features).items()):
    feature = schema.feature.add(name=name, type=feature_type)
    feature.presence.min_fraction = 1.0
    feature.presence.min_count = 1
    if name in SCALAR_FEATURES or side_shapes.get(name) == "scalar":
      feature.shape.dim.add(size=1)
    elif side_shapes.get(name) == "list":  # a categorical_list: any number of values
      feature.value_count.min = 0
    else:
      feature.value_count.min = 0
      feature.value_count.max = config.max_history
    if name.endswith(side_features.MISSING_SUFFIX) and name in side_shapes:
      feature.int_domain.min, feature.int_domain.max = 0, 1
    if name in INT_RANGES:
      low, high = INT_RANGES[name]
      feature.int_domain.min = low
      if high is not None:
        feature.int_domain.max = high
    if name == events.CATEGORY:
      feature.drift_comparator.infinity_norm.threshold = CATEGORY_DRIFT_THRESHOLD
  schema.dataset_constraints.min_examples_count = MIN_EXAMPLES_PER_SPLIT
  return schema


def schema_text(schema: schema_pb2.Schema) -> str:
  """The schema in protobuf text format (what schema.pbtxt files hold)."""
  return text_format.MessageToString(schema)


def parse_schema(text: str) -> schema_pb2.Schema:
  """The inverse of schema_text; raises text_format.ParseError on a malformed schema."""
  return text_format.Parse(text, schema_pb2.Schema())


def is_history_feature(schema: schema_pb2.Schema, name: str) -> bool:
  """True for a list feature (no fixed shape), False for a scalar or an unknown name."""
  return any(f.name == name and not f.HasField("shape") for f in schema.feature)
