"""Side features: user, item and context columns of a click log, from the log to the model.

A side feature is declared in the one config (`eta_ctr.config.FeatureSpec`, a
tuple of them in `EtaConfig.features`); this module is what each declaration
means, in one place, with no TensorFlow, Beam or TFX imported:

  - its names: the raw tf.Example features the ingest writes (`raw_features`),
    the transformed tensors Transform produces and the models read
    (`transformed_features`), its vocabulary (`vocabulary_name`) and the sizes
    of the embedding tables those need (`vocabulary_sizes`);
  - the check that no name clashes with a built-in column or another feature;
  - its value rule (`parse_value`), shared by the ingest (a bad value is a dead
    letter with the reason) and, later, the server (INVALID_ARGUMENT with the
    same words).

Values (the ingest, components/parsing.py and components/histories.py):

  kind              raw example features                  a missing value (empty cell, null,
                                                          absent JSON key)
  categorical       NAME: bytes, 1 value                  b"" (Transform: an OOV bucket), or
                                                          the declared `default`
  numeric           NAME: float, 1 value                  NAME = `default` (else 0.0) and
                    NAME_missing: int64, 1 value (0/1)    NAME_missing = 1 (Transform: the
                                                          train mean, i.e. z = 0, unless a
                                                          default is declared)
  categorical_list  NAME: bytes, 0..n values (split on    no values, or the declared default
                    `separator`, or a JSON/Parquet list)
  in_history        hist_NAME (+ hist_NAME_missing for    as above, per behaviour
  (item features)   numeric): one value per history
                    entry, parallel to hist_item_ids

A categorical value follows the id rule (components/rules.py id_problem: UTF-8
text of at most 512 characters without control characters, whitespace
stripped); a numeric value must be a finite number within float32's range
(rules.numeric_problem). Anything else is an `invalid_field` dead letter naming
the feature and the value; the server will apply the same rules.

Point in time: a candidate's item features are the values on its own event row;
a history behaviour's item features (in_history) are the values on *that
behaviour's* event row, i.e. what the item looked like when the user acted on
it, never a later value. A sampled negative (negatives_per_positive) takes the
item's values from its earliest row in the log; user and context features of a
negative are the positive's (the same request).
"""

import dataclasses
import decimal
import math
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from components import events, rules

USER, ITEM, CONTEXT = "user", "item", "context"
ENTITIES = (USER, ITEM, CONTEXT)
CATEGORICAL, NUMERIC, CATEGORICAL_LIST = "categorical", "numeric", "categorical_list"
KINDS = (CATEGORICAL, NUMERIC, CATEGORICAL_LIST)
CATEGORICAL_KINDS = (CATEGORICAL, CATEGORICAL_LIST)

HISTORY_PREFIX = "hist_"      # raw history lists: hist_NAME
MISSING_SUFFIX = "_missing"   # numeric missing indicators: NAME_missing, hist_NAME_missing
# Transformed tensors (see transformed_features).
INDEX_SUFFIX = "_idx"
ZSCORE_SUFFIX = "_z"
LONG_PREFIX, SHORT_PREFIX = "long_", "short_"
VOCAB_SUFFIX = "_vocab"

# A feature name: a letter, then letters, digits or underscores; at most 64.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
# Names the project uses already: the raw columns and example features
# (components/events.py) and the transformed tensors of the built-in features
# (models/features.py; side_features_test checks this list against it).
BUILT_IN_RAW = frozenset((events.USER_ID, events.ITEM_ID, events.CATEGORY, events.TIMESTAMP,
                          events.LABEL, events.HIST_ITEM_IDS, events.HIST_CATEGORIES,
                          events.HIST_TIMESTAMPS, events.HIST_LABELS))
BUILT_IN_TRANSFORMED = frozenset((
    "label", "user_id", "item_idx", "category_idx", "long_item_idx", "long_category_idx",
    "long_time_gap", "long_length", "short_item_idx", "short_category_idx", "short_time_gap",
    "short_length", "item_vocab", "category_vocab"))
RESERVED_PREFIXES = (HISTORY_PREFIX, LONG_PREFIX, SHORT_PREFIX)
# The exported signatures' own input and output names (models/signatures.py;
# its test checks this list): a feature's name is also a `score` input's.
SERVING_NAMES = frozenset(("examples", "item_ids", "categories", "request_time",
                           "probabilities", "retrieved_positions", "retrieved_distances"))


def name_problem(name: Any) -> Optional[str]:
  """Why `name` cannot name a side feature on its own (not counting the other
  declared features), or None."""
  if not isinstance(name, str) or not NAME_PATTERN.match(name):
    return (f"feature name {name!r} must start with a letter and hold only letters, "
            "digits and underscores (at most 64)")
  if name in BUILT_IN_RAW:
    return (f"feature name {name!r} is a built-in column (components/events.py: "
            f"{', '.join(sorted(BUILT_IN_RAW))}); declare only the log's other columns")
  if name in BUILT_IN_TRANSFORMED or name + INDEX_SUFFIX in BUILT_IN_TRANSFORMED:
    return f"feature name {name!r} clashes with a built-in transformed feature; rename it"
  if name in SERVING_NAMES:
    return (f"feature name {name!r} is an input or output of the exported model's "
            "signatures; rename the column")
  if name.startswith(RESERVED_PREFIXES):
    return (f"feature name {name!r} starts with a reserved prefix "
            f"({', '.join(RESERVED_PREFIXES)}); rename the column")
  if name.endswith(MISSING_SUFFIX):
    return (f"feature name {name!r} ends with {MISSING_SUFFIX!r}, reserved for the missing "
            "indicators of numeric features; rename the column")
  return None


def check_names(specs: Sequence[Any]):
  """Raises ValueError when two declared features share a name, or any name a
  feature produces (raw or transformed) is also produced by another."""
  seen: Dict[str, str] = {}
  for spec in specs:
    produced = [spec.name, *raw_features(spec), vocabulary_name(spec) or spec.name,
                *(t.name for t in transformed_features([spec], 1, 1))]
    for name in dict.fromkeys(produced):
      if name in BUILT_IN_RAW or name in BUILT_IN_TRANSFORMED:
        raise ValueError(f"feature {spec.name!r} would produce {name!r}, a built-in feature's "
                         "name; rename it")
      if name in seen and seen[name] != spec.name:
        raise ValueError(f"features {seen[name]!r} and {spec.name!r} both produce the "
                         f"feature {name!r}; rename one")
      if name in seen:
        raise ValueError(f"feature {spec.name!r} is declared twice")
      seen[name] = spec.name


# ---------------------------------------------------------------- raw features

def history_specs(specs: Iterable[Any]) -> Tuple[Any, ...]:
  """The declared item features that also travel into the history."""
  return tuple(spec for spec in specs if spec.in_history)


def raw_features(spec) -> Dict[str, Tuple[str, str]]:
  """{raw tf.Example feature: (dtype, shape)} the ingest writes for one feature.

  dtype: 'bytes', 'float' or 'int64'; shape: 'scalar' (exactly one value),
  'list' (0..n values) or 'history' (one value per history entry).
  """
  if spec.kind == NUMERIC:
    result = {spec.name: ("float", "scalar"), spec.name + MISSING_SUFFIX: ("int64", "scalar")}
  elif spec.kind == CATEGORICAL:
    result = {spec.name: ("bytes", "scalar")}
  else:
    result = {spec.name: ("bytes", "list")}
  if spec.in_history:
    hist = HISTORY_PREFIX + spec.name
    if spec.kind == NUMERIC:
      result[hist] = ("float", "history")
      result[hist + MISSING_SUFFIX] = ("int64", "history")
    else:
      result[hist] = ("bytes", "history")
  return result


def all_raw_features(specs: Iterable[Any]) -> Dict[str, Tuple[str, str]]:
  result = {}
  for spec in specs:
    result.update(raw_features(spec))
  return result


# ------------------------------------------------------------ transformed features

def vocabulary_name(spec) -> Optional[str]:
  """The tf.Transform vocabulary (asset) of a categorical feature, None for numeric.
  An item feature's vocabulary covers the candidate and the history values."""
  return spec.name + VOCAB_SUFFIX if spec.kind in CATEGORICAL_KINDS else None


@dataclasses.dataclass(frozen=True)
class TransformedFeature:
  """One tensor Transform produces for a side feature (the models' input).

  Attributes:
    name: the transformed feature's name.
    feature: the declared feature it comes from.
    entity: `user`, `item` or `context`.
    role: `value` (the candidate's / the example's own), `missing` (a numeric's
      indicator), `long` / `short` (the long / short history sequence, for
      in_history item features) or `long_missing` / `short_missing`.
    dtype: 'int64' (vocabulary indices: 0 = padding, 1..V the vocabulary, then
      the OOV buckets) or 'float32' (z-scores, indicators 0/1).
    shape: ('B',), ('B', max_values) for a categorical list (0-padded),
      ('B', L) / ('B', S) for history sequences (0-padded, most recent first).
    vocabulary: the vocabulary whose index space the values are in (None for floats).
  """
  name: str
  feature: str
  entity: str
  role: str
  dtype: str
  shape: Tuple[Any, ...]
  vocabulary: Optional[str] = None


def transformed_features(specs: Iterable[Any], long_seq_len: int,
                         short_seq_len: int) -> Tuple[TransformedFeature, ...]:
  """Every tensor models/preprocessing.py produces for the declared features, in
  declaration order (the contract between Transform and the models).

  categorical       NAME_idx [B] int64
  categorical_list  NAME_idx [B, max_values] int64, 0-padded (the first max_values)
  numeric           NAME_z [B] float32 (z-score over train's non-missing values; a
                    missing value is 0, the mean, unless a default is declared),
                    NAME_missing [B] float32 (1.0 = the value was missing)
  in_history        long_NAME_idx [B, L], short_NAME_idx [B, S] int64 (same
    categorical     vocabulary as NAME_idx; 0 = padding)
  in_history        long_NAME_z [B, L], short_NAME_z [B, S] float32 (same mean and
    numeric         std as NAME_z), long_NAME_missing, short_NAME_missing float32
  """
  result = []
  for spec in specs:
    vocab = vocabulary_name(spec)

    def add(name, role, dtype, shape, vocabulary=None, spec=spec):
      result.append(TransformedFeature(name, spec.name, spec.entity, role, dtype, shape,
                                       vocabulary))

    if spec.kind == NUMERIC:
      add(spec.name + ZSCORE_SUFFIX, "value", "float32", ("B",))
      add(spec.name + MISSING_SUFFIX, "missing", "float32", ("B",))
    elif spec.kind == CATEGORICAL:
      add(spec.name + INDEX_SUFFIX, "value", "int64", ("B",), vocab)
    else:
      add(spec.name + INDEX_SUFFIX, "value", "int64", ("B", spec.max_values), vocab)
    if spec.in_history:
      for prefix, length in ((LONG_PREFIX, long_seq_len), (SHORT_PREFIX, short_seq_len)):
        role = prefix[:-1]
        if spec.kind == NUMERIC:
          add(prefix + spec.name + ZSCORE_SUFFIX, role, "float32", ("B", length))
          add(prefix + spec.name + MISSING_SUFFIX, role + "_missing", "float32",
              ("B", length))
        else:
          add(prefix + spec.name + INDEX_SUFFIX, role, "int64", ("B", length), vocab)
  return tuple(result)


def vocabulary_sizes(tf_transform_output, specs: Iterable[Any]) -> Dict[str, int]:
  """{declared feature name: embedding-table rows} for each categorical feature:
  the vocabulary's size + its OOV buckets + 1 (index 0, padding), as
  models/trainer.py's vocabulary_sizes counts items. `tf_transform_output` is a
  tft.TFTransformOutput (only its vocabulary_size_by_name is called)."""
  return {spec.name: (tf_transform_output.vocabulary_size_by_name(vocabulary_name(spec))
                      + spec.num_oov_buckets + 1)
          for spec in specs if spec.kind in CATEGORICAL_KINDS}


# ----------------------------------------------------------------------- values


def _categorical_text(spec, value: Any) -> str:
  if isinstance(value, bool):
    value = "true" if value else "false"
  elif isinstance(value, float) and value.is_integer():
    value = int(value)
  elif isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError:
      raise events.RowError(events.INVALID_FIELD, f"{spec.name} is not UTF-8") from None
  if not isinstance(value, (str, int, float)):
    raise events.RowError(events.INVALID_FIELD,
                          f"{spec.name} has type {type(value).__name__}")
  text = rules.strip(str(value))
  problem = rules.id_problem(text)
  if problem:
    raise events.RowError(events.INVALID_FIELD, f"{spec.name} value {problem}")
  return text


def _number(spec, value: Any) -> float:
  if isinstance(value, bool):
    raise events.RowError(events.INVALID_FIELD, f"{spec.name} is a boolean: {value!r}")
  if isinstance(value, (int, float, decimal.Decimal)):  # Decimal: a Parquet decimal column
    number = float(value)
  elif isinstance(value, (str, bytes)):
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    try:
      number = float(text.strip())
    except ValueError:
      raise events.RowError(events.INVALID_FIELD,
                            f"{spec.name} {text[:40]!r} is not a number") from None
  else:
    raise events.RowError(events.INVALID_FIELD, f"{spec.name} has type {type(value).__name__}")
  problem = rules.numeric_problem(number)
  if problem:
    raise events.RowError(events.INVALID_FIELD, f"{spec.name} {str(value)[:40]!r} {problem}")
  return number


def _list(spec, value: Any) -> Tuple[str, ...]:
  if isinstance(value, (list, tuple)):
    parts = [part for part in value if not rules.is_missing(part)]
  elif isinstance(value, (str, bytes)):
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    parts = [part for part in text.split(spec.separator) if rules.strip(part)]
  else:
    parts = [value]
  return tuple(_categorical_text(spec, part) for part in parts)


def parse_value(spec, value: Any):
  """One cell of a declared feature -> its stored value.

  categorical: str ("" when missing); numeric: (float, missing 0/1), a missing
  value being (default or 0.0, 1); categorical_list: tuple of str (() when missing).
  Defaults of categoricals are applied when the example is written
  (example_value), so the report can count missing cells.

  Raises:
    events.RowError: invalid_field naming the feature and the problem.
  """
  if rules.is_missing(value) or (isinstance(value, (list, tuple)) and not value
                            and spec.kind != CATEGORICAL_LIST):
    return missing_value(spec)
  if spec.kind == NUMERIC:
    return (_number(spec, value), 0)
  if spec.kind == CATEGORICAL:
    if isinstance(value, (list, tuple, dict)):
      raise events.RowError(events.INVALID_FIELD,
                            f"{spec.name} is a {type(value).__name__}, not one value")
    return _categorical_text(spec, value)
  return _list(spec, value)


def missing_value(spec):
  """The stored value of a missing cell (see parse_value)."""
  if spec.kind == NUMERIC:
    return (0.0 if spec.default is None else float(spec.default), 1)
  if spec.kind == CATEGORICAL:
    return ""
  return ()


def is_missing_value(spec, stored) -> bool:
  if spec.kind == NUMERIC:
    return bool(stored[1])
  return not stored


def check_default(spec):
  """Raises ValueError when a declared default is not a valid value of the feature."""
  if spec.default is None:
    return
  try:
    if rules.is_missing(spec.default):
      raise events.RowError(events.MISSING_FIELD, "is empty")
    parse_value(spec, spec.default)
  except events.RowError as error:
    raise ValueError(f"feature {spec.name!r}: default {spec.default!r} is not a valid "
                     f"{spec.kind} value ({error.detail})") from None


def parse_row(specs: Sequence[Any], fields: Mapping[str, Any]) -> Tuple[Any, ...]:
  """The stored values of every declared feature of one row (absent key = missing)."""
  return tuple(parse_value(spec, fields.get(spec.name)) for spec in specs)


def example_value(spec, stored):
  """A stored value as the example holds it: bytes / [bytes] / (float, int)."""
  if spec.kind == NUMERIC:
    return stored
  if spec.kind == CATEGORICAL:
    text = stored if stored or spec.default is None else rules.strip(spec.default)
    return text.encode("utf-8")
  values = stored if stored or spec.default is None else _list(spec, spec.default)
  return [value.encode("utf-8") for value in values]


def item_values(specs: Sequence[Any], stored: Sequence[Any]) -> Tuple[Any, ...]:
  """The item features' stored values out of a row's values (declaration order)."""
  return tuple(value for spec, value in zip(specs, stored) if spec.entity == ITEM)


def add_to_example(feature_map, specs: Sequence[Any], stored: Sequence[Any]):
  """Writes the declared features of one example into a tf.Example's feature map."""
  for spec, value in zip(specs, stored):
    value = example_value(spec, value)
    if spec.kind == NUMERIC:
      feature_map[spec.name].float_list.value.append(value[0])
      feature_map[spec.name + MISSING_SUFFIX].int64_list.value.append(value[1])
    elif spec.kind == CATEGORICAL:
      feature_map[spec.name].bytes_list.value.append(value)
    else:
      feature_map[spec.name].bytes_list.value.extend(value)


def add_history_to_example(feature_map, specs: Sequence[Any], columns: Sequence[List[Any]]):
  """Writes hist_NAME (+ hist_NAME_missing) of the in_history `specs`; columns[i]
  holds spec i's example values (example_value), most recent first."""
  for spec, column in zip(specs, columns):
    name = HISTORY_PREFIX + spec.name
    if spec.kind == NUMERIC:
      feature_map[name].float_list.value.extend(value for value, _ in column)
      feature_map[name + MISSING_SUFFIX].int64_list.value.extend(m for _, m in column)
    else:
      feature_map[name].bytes_list.value.extend(column)
