"""The one configuration object of the project.

Every stage (ingest, Transform, Trainer, serving, benchmarks) reads its settings
from an `EtaConfig`; the CLI and the TFX components only build or pass one. It
round-trips through JSON so it can travel as a TFX exec property or a file.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Optional, Tuple

from components import events, side_features
from components.formats import FORMAT_NAMES, feature_format_names, get as get_format
from components.movielens import DEFAULT_MIN_POSITIVE_RATING, check_min_positive_rating

# The key under which the config travels in TFX exec properties and custom_config.
ETA_CONFIG_KEY = "eta_config"

SPLIT_MODES = ("per_user", "global_time")
# The EtaConfig field (and JSON key) of the declared side features.
FEATURES_KEY = "features"


@dataclasses.dataclass(frozen=True)
class SourceConfig:
  """Where the click log is and how to read it.

  Attributes:
    format: one of components.formats.FORMAT_NAMES. `csv`, `jsonl` and
      `parquet` are the generic table (columns user_id, item_id, [category],
      timestamp, label); `movielens` reads a MovieLens directory of any layout
      (components/movielens.py); `taobao` reads the UserBehavior CSV.
    path: a file, a directory, or a glob. For `movielens` the directory
      (ml-100k, ml-1m, ml-10m, ml-latest, ml-latest-small, ml-20m/25m/32m).
    min_positive_rating: `movielens` only (other formats ignore it): a rating of
      at least this many stars is a positive (label 1), below it a negative.
      In (0, 5]; on half-star releases the default 4.0 makes 3.5 a negative.
  """
  format: str = "movielens"
  path: str = ""
  min_positive_rating: float = DEFAULT_MIN_POSITIVE_RATING  # 4.0 stars

  def __post_init__(self):
    get_format(self.format)  # raises ValueError naming the known formats
    check_min_positive_rating(self.min_positive_rating)  # raises ValueError


@dataclasses.dataclass(frozen=True)
class IngestConfig:
  """How click events become point-in-time training examples.

  Attributes:
    max_history: cap on the behaviours kept per example (most recent first).
    split: `per_user` puts each user's last `eval_fraction` of events in eval;
      `global_time` puts every event at or after `eval_cutoff` in eval.
    eval_fraction: share of each user's events in eval (per_user split).
    eval_cutoff: unix seconds (global_time split).
    valid_fraction: share of each user's train-period events (the events not in
      eval, either split mode) that form the `valid` split, the last ones in
      time, rounded as eval_fraction is; the Trainer and `eta compare` choose
      the stopping step on it. In [0, 1); 0 = no valid split (the whole step
      budget is trained, nothing is selected).
    negatives_per_positive: for positive-only logs, non-clicked items sampled per
      positive, from the same category where possible.
    history_includes_non_clicked: also put label-0 events into the history (and
      emit `hist_labels`).
    seed: seed of every random choice of the ingest.
  """
  max_history: int = 1024
  split: str = "per_user"
  eval_fraction: float = 0.2
  eval_cutoff: Optional[int] = None
  valid_fraction: float = 0.1
  negatives_per_positive: int = 0
  history_includes_non_clicked: bool = False
  seed: int = 42

  def __post_init__(self):
    if self.max_history < 1:
      raise ValueError("max_history must be >= 1")
    if self.split not in SPLIT_MODES:
      raise ValueError(f"unknown split {self.split!r}; expected one of {SPLIT_MODES}")
    if self.split == "global_time" and self.eval_cutoff is None:
      raise ValueError("split='global_time' needs eval_cutoff (unix seconds)")
    if not 0.0 <= self.eval_fraction < 1.0:
      raise ValueError("eval_fraction must be in [0, 1)")
    if not 0.0 <= self.valid_fraction < 1.0:
      raise ValueError("valid_fraction must be in [0, 1)")
    if self.negatives_per_positive < 0:
      raise ValueError("negatives_per_positive must be >= 0")

  @property
  def split_names(self) -> Tuple[str, ...]:
    """The splits the ingest writes, in time order: train, valid (only when
    valid_fraction > 0), eval (components.events)."""
    return tuple(s for s in events.SPLITS
                 if s != events.SPLIT_VALID or self.valid_fraction > 0)


# The architectures (models/architectures/registry.py maps each to its class);
# the baselines first, ETA last.
MODEL_NAMES = ("avg_pool", "din", "din_long", "sim_hard", "sdim", "eta", "eta_summary")
# ETA plus the mean of the long sequence: on MovieLens-100k +0.018 AUC over plain
# ETA, paired over seeds (docs/eta_diagnosis.md).
DEFAULT_MODEL = "eta_summary"
ATTENTION_TYPES = ("dot", "din")
# ETA's Hamming top-k kernels (models/layers/hamming_topk.py).
KERNEL_AUTO, KERNEL_FUSED, KERNEL_STOCK = "auto", "fused", "stock"
RETRIEVAL_KERNELS = (KERNEL_AUTO, KERNEL_FUSED, KERNEL_STOCK)
# tf.distribute strategies (models/distribution.py).
DISTRIBUTION_AUTO, DISTRIBUTION_DEFAULT = "auto", "default"
DISTRIBUTION_MIRRORED, DISTRIBUTION_MULTI_WORKER = "mirrored", "multi_worker"
# What early stopping maximises on the valid split (models/early_stopping.py):
# valid AUC - valid logloss (FuxiCTR's default monitor), -logloss, or AUC.
SELECTION_AUC_MINUS_LOGLOSS, SELECTION_LOGLOSS, SELECTION_AUC = (
    "auc_minus_logloss", "logloss", "auc")
SELECTION_METRICS = (SELECTION_AUC_MINUS_LOGLOSS, SELECTION_LOGLOSS, SELECTION_AUC)
DISTRIBUTIONS = (DISTRIBUTION_AUTO, DISTRIBUTION_DEFAULT, DISTRIBUTION_MIRRORED,
                 DISTRIBUTION_MULTI_WORKER)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Sequences, vocabularies and architecture; shared by Transform, Trainer and serving.

  The defaults are the paper's (embedding 32, 64 hash bits, k = 48 for L = 1024).
  For MovieLens use L = 256, S = 16, k = 16: most of its histories are shorter
  than 48, and a k above the history length makes retrieval select everything.

  Attributes:
    name: the architecture, one of MODEL_NAMES.
    long_seq_len: L, the long sequence (the first L history entries, most recent first).
    short_seq_len: S, the short (recent) sequence.
    top_k: k, the behaviours ETA / SIM retrieve from the long sequence.
    hash_bits: SimHash signature bits (ETA), multiple of nothing in particular.
    embedding_dim: item and category embedding size each.
    time_gap_buckets: log2-minute buckets of (event time - behaviour time); 0 is padding.
    num_heads: heads of the target attention.
    attention: `dot` (scaled dot product) or `din` (DIN's activation unit).
    mlp_units: the prediction MLP.
    sdim_hash_rounds, sdim_bits_per_round: SDIM's m hash functions of tau bits.
    vocab_top_k: keep the most frequent items (None = all); the rest share OOV buckets.
    num_oov_buckets: OOV buckets of the item and category vocabularies.
    vocab_min_frequency: items seen fewer times are OOV.
    seed: initialisation and SimHash projection seed.
    hash_category: ETA hashes item ++ category embedding (the paper's item
      representation), not the item embedding alone.
    long_time_gaps: add the time-gap embedding to long-sequence behaviours too
      (it is always added to the short sequence's). Off by default: on
      MovieLens-100k it cost ETA 0.005 AUC, paired over seeds
      (docs/eta_diagnosis.md).
    activity_feature: give the MLP the user-activity embedding (log2 buckets of
      the history length).
    embedding_init_stddev: stddev of the normal initialiser of the item,
      category and activity embeddings.
    retrieval_kernel: ETA's fused compiled ops (the Hamming top-k, and at
      inference with many candidates per history the gather + attention over
      the retrieved behaviours): `auto` uses them in training and in process
      where they build, and exports stock TensorFlow ops so any TF Serving loads
      the model; `fused` also exports the fused ops (the built-in server loads
      them; stock tensorflow_model_server cannot); `stock` never uses them. All
      three retrieve identically; the attention agrees to float rounding.
  """
  name: str = DEFAULT_MODEL
  long_seq_len: int = 1024
  short_seq_len: int = 16
  top_k: int = 48
  hash_bits: int = 64
  embedding_dim: int = 32
  time_gap_buckets: int = 24
  num_heads: int = 2
  attention: str = "dot"
  mlp_units: Tuple[int, ...] = (200, 80)
  dropout: float = 0.0
  sdim_hash_rounds: int = 16
  sdim_bits_per_round: int = 3
  vocab_top_k: Optional[int] = None
  num_oov_buckets: int = 1
  vocab_min_frequency: int = 1
  seed: int = 7
  retrieval_kernel: str = KERNEL_AUTO
  hash_category: bool = True
  long_time_gaps: bool = False
  activity_feature: bool = True
  embedding_init_stddev: float = 0.05

  def __post_init__(self):
    if self.name not in MODEL_NAMES:
      raise ValueError(f"unknown model {self.name!r}; expected one of {MODEL_NAMES}")
    if self.retrieval_kernel not in RETRIEVAL_KERNELS:
      raise ValueError(f"unknown retrieval_kernel {self.retrieval_kernel!r}; "
                       f"expected {RETRIEVAL_KERNELS}")
    if self.attention not in ATTENTION_TYPES:
      raise ValueError(f"unknown attention {self.attention!r}; expected {ATTENTION_TYPES}")
    if not 1 <= self.short_seq_len <= self.long_seq_len:
      raise ValueError("need 1 <= short_seq_len <= long_seq_len")
    if not 1 <= self.top_k <= self.long_seq_len:
      raise ValueError("need 1 <= top_k <= long_seq_len")
    if self.hash_bits < 1 or self.embedding_dim < 1 or self.time_gap_buckets < 2:
      raise ValueError("hash_bits, embedding_dim must be >= 1, time_gap_buckets >= 2")
    if not self.embedding_init_stddev > 0:
      raise ValueError("embedding_init_stddev must be > 0")
    object.__setattr__(self, "mlp_units", tuple(self.mlp_units))

  # The fields tf.Transform reads: only these may invalidate a cached Transform.
  TRANSFORM_FIELDS = ("long_seq_len", "short_seq_len", "time_gap_buckets", "vocab_top_k",
                      "num_oov_buckets", "vocab_min_frequency")

  def transform_settings(self) -> Dict[str, Any]:
    return {name: getattr(self, name) for name in self.TRANSFORM_FIELDS}

  @classmethod
  def from_transform_settings(cls, settings: Dict[str, Any]) -> "ModelConfig":
    return cls(top_k=1, **settings)

  def replace_clamped(self, **changes) -> "ModelConfig":
    """`dataclasses.replace`, with k and S clamped to the (new) L unless given.

    A default k or S above L would make retrieval select everything (or be
    invalid); one the caller names explicitly is kept and validated as is.

    Raises:
      ValueError: the result is invalid (e.g. an explicit top_k > long_seq_len).
    """
    long_seq_len = changes.get("long_seq_len", self.long_seq_len)
    for name in ("top_k", "short_seq_len"):
      if name not in changes:
        changes[name] = min(getattr(self, name), long_seq_len)
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
  """The training loop.

  Every model gets the same step budget; with a valid split (IngestConfig.
  valid_fraction > 0) training stops early and keeps the best weights.

  Attributes:
    batch_size, learning_rate: the usual (batch_size per replica).
    train_steps: the step budget, an upper bound: with a valid split, training
      is validated every `validate_every_steps` steps, stops after `patience`
      validations without a better `selection_metric`, and ends with the weights
      of the best validation (the chosen step, reported in metrics.json).
    selection_metric: what a better validation is: a higher valid AUC - valid
      logloss (`auc_minus_logloss`, FuxiCTR's default monitor), a lower logloss
      (`logloss`), or a higher AUC (`auc`). On MovieLens-100k the valid logloss
      alone bottoms out early while AUC still improves (docs/eta_diagnosis.md).
    validate_every_steps: steps between two validations (and after the last step).
    patience: validations without improvement before training stops; >= 1.
    validation_steps: batches of 1024 examples per validation; None = the whole
      valid split (the TFX Trainer's eval_args.num_steps).
    shuffle_buffer: examples shuffled before batching.
    clip_norm: clip the gradients to this global norm (None: no clipping).
    distribution: tf.distribute strategy: `auto` (MultiWorkerMirrored when
      TF_CONFIG names several workers, Mirrored with several local GPUs, else the
      default strategy), `default`, `mirrored` or `multi_worker`. batch_size is
      per replica.
  """
  batch_size: int = 256
  learning_rate: float = 1e-3
  train_steps: int = 2000
  validate_every_steps: int = 200
  patience: int = 3
  selection_metric: str = SELECTION_AUC_MINUS_LOGLOSS
  validation_steps: Optional[int] = None
  shuffle_buffer: int = 10_000
  distribution: str = DISTRIBUTION_AUTO
  clip_norm: Optional[float] = None

  def __post_init__(self):
    if self.train_steps < 1 or self.validate_every_steps < 1 or self.patience < 1:
      raise ValueError("train_steps, validate_every_steps and patience must be >= 1")
    if self.validation_steps is not None and self.validation_steps < 1:
      raise ValueError("validation_steps must be >= 1 (or None: the whole valid split)")
    if self.selection_metric not in SELECTION_METRICS:
      raise ValueError(f"unknown selection_metric {self.selection_metric!r}; expected "
                       f"{SELECTION_METRICS}")
    if self.clip_norm is not None and not self.clip_norm > 0:
      raise ValueError("clip_norm must be > 0 (or None: no clipping)")
    if self.distribution not in DISTRIBUTIONS:
      raise ValueError(f"unknown distribution {self.distribution!r}; expected {DISTRIBUTIONS}")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
  """Blessing: when the Evaluator lets the Pusher push a model (TFMA thresholds).

  Attributes:
    auc_floor: the eval AUC a model needs at least.
    max_auc_regression: the largest AUC drop allowed against the last blessed
      model (absolute, e.g. 0.01).
    max_logloss_over_base_rate: the most by which the eval logloss may exceed the
      base-rate predictor's (the constant prediction = the eval label mean, whose
      logloss is the label entropy), in nats; 0 = no worse than it.
    max_calibration_error: the largest |calibration - 1| allowed, calibration =
      mean prediction / mean label on eval (0.2: in [0.8, 1.2]).
  """
  auc_floor: float = 0.6
  max_auc_regression: float = 0.01
  max_logloss_over_base_rate: float = 0.0
  max_calibration_error: float = 0.2

  def __post_init__(self):
    if not 0.0 <= self.auc_floor <= 1.0:
      raise ValueError("auc_floor must be in [0, 1]")
    if self.max_auc_regression < 0:
      raise ValueError("max_auc_regression must be >= 0")
    if self.max_logloss_over_base_rate < 0:
      raise ValueError("max_logloss_over_base_rate must be >= 0")
    if not 0.0 <= self.max_calibration_error < 1.0:
      raise ValueError("max_calibration_error must be in [0, 1)")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
  """One side feature: a column of the click log beyond the built-in ones
  (components/side_features.py says what each declaration produces, end to end).

  Attributes:
    name: the column's name in the log, and the raw tf.Example feature's name.
      A letter, then letters, digits, underscores; not a built-in column
      (components/events.py), not starting with hist_/long_/short_, not ending
      with _missing.
    entity: who it describes: `user` (profile), `item` (attributes, e.g. brand,
      price) or `context` (the request: device, hour, position).
    kind: `categorical` (one value, a vocabulary index), `numeric` (one number,
      z-scored) or `categorical_list` (several values, e.g. all genres).
    vocab_size: categorical kinds: keep the most frequent values of the train
      split (None = all); the rest share the OOV buckets.
    num_oov_buckets: categorical kinds: buckets of values outside the vocabulary
      (and of missing values); >= 1.
    separator: categorical_list: what separates the values in a text cell (a
      JSON or Parquet list needs none).
    max_values: categorical_list: Transform keeps the first max_values values
      (the ingest keeps them all).
    default: the value of an empty cell, written as text (None: categorical ->
      the OOV bucket, numeric -> the train mean with a missing indicator,
      categorical_list -> no values). Must be a valid value of the kind.
    in_history: item features only: also write hist_NAME, the value of each
      history behaviour (from that behaviour's own row), parallel to
      hist_item_ids. It costs storage: the ingest report gives the bytes per
      example with and without. Not for categorical_list yet.
  """
  name: str
  entity: str
  kind: str
  vocab_size: Optional[int] = None
  num_oov_buckets: int = 1
  separator: str = "|"
  max_values: int = 8
  default: Optional[str] = None
  in_history: bool = False

  def __post_init__(self):
    problem = side_features.name_problem(self.name)
    if problem:
      raise ValueError(problem)
    if self.entity not in side_features.ENTITIES:
      raise ValueError(f"feature {self.name!r}: unknown entity {self.entity!r}; expected "
                       f"one of {side_features.ENTITIES}")
    if self.kind not in side_features.KINDS:
      raise ValueError(f"feature {self.name!r}: unknown kind {self.kind!r}; expected one "
                       f"of {side_features.KINDS}")
    if self.vocab_size is not None and (self.kind not in side_features.CATEGORICAL_KINDS
                                        or self.vocab_size < 1):
      raise ValueError(f"feature {self.name!r}: vocab_size needs a categorical kind and "
                       "must be >= 1 (or None: the whole vocabulary)")
    if self.num_oov_buckets < 1:
      raise ValueError(f"feature {self.name!r}: num_oov_buckets must be >= 1")
    if not self.separator or self.max_values < 1:
      raise ValueError(f"feature {self.name!r}: separator must be non-empty and "
                       "max_values >= 1")
    if self.in_history and (self.entity != side_features.ITEM
                            or self.kind == side_features.CATEGORICAL_LIST):
      raise ValueError(f"feature {self.name!r}: in_history is for item features of kind "
                       "categorical or numeric only")
    if self.default is not None and not isinstance(self.default, str):
      object.__setattr__(self, "default", str(self.default))
    side_features.check_default(self)  # raises ValueError naming the feature


@dataclasses.dataclass(frozen=True)
class EtaConfig:
  """Everything a run needs; sections are added as the pipeline grows.

  `features` declares the log's side-feature columns (FeatureSpec; dicts are
  accepted and converted). Without any, the config's dict and JSON hold no
  `features` key, so they (and every cache key built from them) are what they
  were before side features existed.
  """
  source: SourceConfig = dataclasses.field(default_factory=SourceConfig)
  ingest: IngestConfig = dataclasses.field(default_factory=IngestConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
  evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
  features: Tuple[FeatureSpec, ...] = ()

  def __post_init__(self):
    features = tuple(spec if isinstance(spec, FeatureSpec) else FeatureSpec(**spec)
                     for spec in self.features)
    object.__setattr__(self, "features", features)
    side_features.check_names(features)  # raises ValueError naming the clash
    if features and not get_format(self.source.format).supports_features:
      raise ValueError(f"the {self.source.format} format has no side-feature columns; "
                       f"declare features for {', '.join(feature_format_names())} logs")

  def to_dict(self) -> Dict[str, Any]:
    data = dataclasses.asdict(self)
    if not self.features:
      del data[FEATURES_KEY]
    return data

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), sort_keys=True)

  @classmethod
  def from_dict(cls, data: Dict[str, Any]) -> "EtaConfig":
    sections = {f.name: f for f in dataclasses.fields(cls) if f.name != FEATURES_KEY}
    data = dict(data)
    features = data.pop(FEATURES_KEY, ())
    unknown = set(data) - set(sections)
    if unknown:
      raise ValueError(f"unknown config sections: {sorted(unknown)}")
    kwargs = {FEATURES_KEY: tuple(features_from_dicts(features))}
    for name, value in data.items():
      section_type = sections[name].default_factory  # the section's dataclass
      kwargs[name] = section_type(**value)
    return cls(**kwargs)

  @classmethod
  def from_json(cls, text: str) -> "EtaConfig":
    return cls.from_dict(json.loads(text))

  @classmethod
  def for_source(cls, source: SourceConfig, **sections) -> "EtaConfig":
    """The default settings for a click log, with its format's model defaults
    (components.formats; e.g. L = 256, S = 16, k = 16 for MovieLens-100k, whose
    histories have a median of 65 and a maximum of 737)."""
    model = ModelConfig(**get_format(source.format).model_defaults)
    return cls(source=source, model=model).replace(**sections)

  @classmethod
  def for_movielens(cls, **sections) -> "EtaConfig":
    """The settings that suit MovieLens-100k (see for_source)."""
    return cls.for_source(SourceConfig(format="movielens"), **sections)

  def ingest_only(self) -> "EtaConfig":
    """Just the sections the ingest reads, so model changes keep its cache."""
    return EtaConfig(source=self.source, ingest=self.ingest, features=self.features)

  def replace(self, **sections) -> "EtaConfig":
    return dataclasses.replace(self, **sections)


def features_from_dicts(entries) -> Tuple[FeatureSpec, ...]:
  """FeatureSpecs from a list of dicts (a config's or a features file's).

  Raises:
    ValueError: an entry is not a dict, names an unknown option or is invalid.
  """
  known = {f.name for f in dataclasses.fields(FeatureSpec)}
  specs = []
  for entry in entries:
    if isinstance(entry, FeatureSpec):
      specs.append(entry)
      continue
    if not isinstance(entry, dict):
      raise ValueError(f"a feature must be an object of {sorted(known)}, not {entry!r}")
    unknown = set(entry) - known
    if unknown:
      raise ValueError(f"feature {entry.get('name')!r}: unknown options {sorted(unknown)}; "
                       f"expected {sorted(known)}")
    missing = [key for key in ("name", "entity", "kind") if key not in entry]
    if missing:
      raise ValueError(f"feature {entry.get('name')!r} lacks {missing}")
    specs.append(FeatureSpec(**entry))
  return tuple(specs)
