"""Command-line flags and the one `EtaConfig` they build.

Each group adds one `EtaConfig` section's flags to a parser; `config_from_args`
turns the parsed flags into the config. `eta run`, `eta compare`,
`eta ingest` and `eta kubeflow compile` all use these, so a flag and its
default exist once. No TensorFlow, Beam or TFX is imported here.
"""

import argparse
import json
import os
from typing import Optional, Tuple

from components import datasets, formats, movielens, side_features
from eta_ctr.config import (DISTRIBUTIONS, MODEL_NAMES, RETRIEVAL_KERNELS, SELECTION_METRICS,
                            SPLIT_MODES,
                            ATTENTION_TYPES, EtaConfig, EvaluationConfig, FeatureSpec,
                            IngestConfig, ModelConfig, SourceConfig, TrainerConfig,
                            features_from_dicts)

# Named data sets of --data (components/datasets.py; anything else is a path).
MOVIELENS_100K = "movielens-100k"  # the default
SYNTHETIC = "synthetic"

# ModelConfig fields with a flag of the same name (None = the config's default).
_MODEL_FLAGS = ("long_seq_len", "short_seq_len", "top_k", "hash_bits", "embedding_dim",
                "attention", "retrieval_kernel")


def add_data_args(parser: argparse.ArgumentParser):
  group = parser.add_argument_group("data")
  group.add_argument("--data",
                     help=f"{', '.join(datasets.NAMES)}, {SYNTHETIC}, or a PATH (file, "
                          f"directory or glob); default {MOVIELENS_100K}")
  add_format_arg(group)
  group.add_argument("--data-path",
                     help="directory holding the named data set, or its parent (else "
                          "$ETA_DATA_DIR, ../shared/datasets, then a download); with "
                          "--format movielens and no --data, a MovieLens directory of "
                          "any layout")
  add_label_rule_arg(group)
  group.add_argument("--synth-events", type=int, default=100_000,
                     help=f"events of the generated log for --data {SYNTHETIC}")


def add_label_rule_arg(group):
  group.add_argument("--min-positive-rating", type=_stars,
                     default=SourceConfig.min_positive_rating, metavar="STARS",
                     help="MovieLens label rule: a rating of at least STARS is a positive "
                          "(default %(default)s; on half-star data 3.5 is then a negative)")


def _stars(text: str) -> float:
  """--min-positive-rating: a number of stars in (0, 5]."""
  try:
    value = float(text)
    movielens.check_min_positive_rating(value)
  except ValueError as error:
    raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
  return value


def add_format_arg(group):
  group.add_argument("--format", choices=formats.FORMAT_NAMES,
                     help="format of PATH (default: from its extension: " + ", ".join(
                         f"{f.name} {'/'.join(f.extensions)}" for f in formats.FORMATS
                         if f.guessed_from_extension) + ")")


def add_ingest_args(parser: argparse.ArgumentParser):
  defaults = IngestConfig()
  group = parser.add_argument_group("ingest")
  group.add_argument("--max-history", type=int, default=defaults.max_history)
  group.add_argument("--split", choices=SPLIT_MODES, default=defaults.split)
  group.add_argument("--eval-fraction", type=float, default=defaults.eval_fraction)
  group.add_argument("--eval-cutoff",
                     help="unix seconds or ISO-8601; events at or after it go to eval "
                          "(implies --split global_time)")
  group.add_argument("--valid-fraction", type=float, default=defaults.valid_fraction,
                     help="each user's last share of train-period events forms the valid "
                          "split, where training chooses its stopping step (default "
                          "%(default)s; 0: no valid split, the whole step budget is trained)")
  group.add_argument("--negatives-per-positive", type=int,
                     default=defaults.negatives_per_positive)
  group.add_argument("--history-includes-non-clicked", action="store_true")
  group.add_argument("--seed", type=int, default=defaults.seed)
  add_feature_args(parser)


def add_feature_args(parser: argparse.ArgumentParser, title: Optional[str] = None):
  """--feature-preset, --features-file and --feature: the log's side-feature
  columns (EtaConfig.features); `title` heads them in --help."""
  group = parser.add_argument_group(title or (
      f"side features (extra columns of a {', '.join(formats.feature_format_names())} log; "
      "undeclared ones are reported as ignored)"))
  group.add_argument(
      "--feature-preset", action="append", default=[], choices=tuple(movielens.FEATURE_PRESETS),
      metavar="NAME",
      help="declare a shipped list of MovieLens features (components/movielens.py): " +
      "; ".join(f"{name}: {', '.join(spec['name'] for spec in specs)}"
                for name, specs in movielens.FEATURE_PRESETS.items()) +
      " (user columns need ml-100k's u.user or ml-1m's users.dat). Repeatable; its "
      "features come before --features-file's")
  group.add_argument(
      "--feature", action="append", type=parse_feature, default=[],
      metavar="NAME:ENTITY:KIND[:OPTION=VALUE...]",
      help=f"declare a column as a feature; ENTITY one of {', '.join(side_features.ENTITIES)}, "
           f"KIND one of {', '.join(side_features.KINDS)}; OPTIONs: vocab_size=N, "
           "num_oov_buckets=N, separator=S, max_values=N, default=VALUE, in_history=true "
           "(item features: also hist_NAME, parallel to the history). Repeatable, e.g. "
           "--feature age:user:categorical --feature price:item:numeric:in_history=true")
  group.add_argument("--features-file", metavar="FILE",
                     help="a JSON or YAML file declaring features: a list of objects (or "
                          "{features: [...]}) with name, entity, kind and the options above; "
                          "--feature flags are added after its features")


# FeatureSpec options a --feature flag may set, and their types.
_FEATURE_OPTIONS = {"vocab_size": int, "num_oov_buckets": int, "separator": str,
                    "max_values": int, "default": str, "in_history": bool}


def parse_feature(text: str) -> FeatureSpec:
  """--feature NAME:ENTITY:KIND[:OPTION=VALUE...] -> FeatureSpec.

  Raises:
    argparse.ArgumentTypeError: malformed, an unknown option, or an invalid feature.
  """
  parts = text.split(":")
  if len(parts) < 3:
    raise argparse.ArgumentTypeError(
        f"{text!r}: expected NAME:ENTITY:KIND[:OPTION=VALUE...], e.g. age:user:categorical")
  name, entity, kind = (part.strip() for part in parts[:3])
  options = {}
  for item in parts[3:]:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or key not in _FEATURE_OPTIONS:
      raise argparse.ArgumentTypeError(
          f"{text!r}: {item!r} is not OPTION=VALUE with OPTION one of "
          f"{', '.join(_FEATURE_OPTIONS)}")
    try:
      options[key] = _feature_option(_FEATURE_OPTIONS[key], value)
    except ValueError:
      wanted = {int: "an integer", bool: "true or false"}[_FEATURE_OPTIONS[key]]
      raise argparse.ArgumentTypeError(f"{text!r}: {key}={value!r} is not "
                                       f"{wanted}") from None
  try:
    return FeatureSpec(name=name, entity=entity, kind=kind, **options)
  except ValueError as error:
    raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def _feature_option(kind, value: str):
  if kind is bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
      raise ValueError(value)
    return lowered in ("true", "1", "yes")
  if kind is int:
    return int(value)
  return value


def read_features_file(path: str) -> Tuple[FeatureSpec, ...]:
  """The features a JSON or YAML file declares (a list, or {features: [...]}).

  Raises:
    SystemExit: the file cannot be read or parsed, or declares an invalid feature.
  """
  try:
    with open(path, encoding="utf-8") as handle:
      text = handle.read()
  except OSError as error:
    raise SystemExit(f"eta: --features-file: {error}") from None
  is_yaml = path.lower().endswith((".yaml", ".yml"))
  try:
    if is_yaml:
      import yaml  # pylint: disable=g-import-not-at-top  (PyYAML: a dependency of TFX)
      data = yaml.safe_load(text)
    else:
      data = json.loads(text)
  except ImportError:
    raise SystemExit(f"eta: --features-file {path}: reading YAML needs PyYAML "
                     "(pip install pyyaml); or write the file as JSON") from None
  except Exception as error:  # pylint: disable=broad-except  (JSON or YAML syntax)
    raise SystemExit(f"eta: --features-file {path}: not valid "
                     f"{'YAML' if is_yaml else 'JSON'}: {error}") from None
  if isinstance(data, dict) and set(data) == {"features"}:
    data = data["features"]
  if not isinstance(data, list):
    raise SystemExit(f"eta: --features-file {path}: expected a list of features (or "
                     "{\"features\": [...]})")
  try:
    return features_from_dicts(data)
  except (TypeError, ValueError) as error:
    raise SystemExit(f"eta: --features-file {path}: {error}") from None


def features_from_args(args) -> Tuple[FeatureSpec, ...]:
  """The declared features: --feature-preset's, --features-file's, then the
  --feature flags'."""
  features = ()
  for name in getattr(args, "feature_preset", None) or ():
    features += features_from_dicts(movielens.FEATURE_PRESETS[name])
  if getattr(args, "features_file", None):
    features += read_features_file(args.features_file)
  return tuple(features) + tuple(getattr(args, "feature", None) or ())


def _with_features(config: EtaConfig, args) -> EtaConfig:
  """config with the declared features; SystemExit with the reason when they are
  refused (a clash of names, or a format without side-feature columns)."""
  features = features_from_args(args)
  if not features:
    return config
  try:
    return config.replace(features=features)
  except ValueError as error:
    raise SystemExit(f"eta: {error}") from None


def add_model_args(parser: argparse.ArgumentParser):
  """Model, trainer and evaluation (blessing) flags."""
  group = parser.add_argument_group(
      "model (defaults: the paper's; L=256, S=16, k=16 on MovieLens)")
  group.add_argument("--model", choices=MODEL_NAMES, default=ModelConfig.name)
  group.add_argument("--long-seq-len", type=int, help="L")
  group.add_argument("--short-seq-len", type=int, help="S")
  group.add_argument("--top-k", type=int, help="k, behaviours retrieved from the long sequence")
  group.add_argument("--hash-bits", type=int)
  group.add_argument("--embedding-dim", type=int)
  group.add_argument("--attention", choices=ATTENTION_TYPES)
  group.add_argument("--retrieval-kernel", choices=RETRIEVAL_KERNELS,
                     help="ETA's Hamming top-k: auto (fused in training, stock ops in the "
                          "export), fused (also exported; built-in server only) or stock")
  group = parser.add_argument_group("trainer")
  group.add_argument("--train-steps", type=int, default=TrainerConfig.train_steps,
                     help="the step budget, an upper bound: early stopping on the valid "
                          "split may stop sooner (default %(default)s)")
  group.add_argument("--validate-every-steps", type=int,
                     default=TrainerConfig.validate_every_steps,
                     help="steps between validations on the valid split (default %(default)s)")
  group.add_argument("--patience", type=int, default=TrainerConfig.patience,
                     help="validations without a better --selection-metric before training "
                          "stops; the best weights are kept (default %(default)s)")
  group.add_argument("--selection-metric", choices=SELECTION_METRICS,
                     default=TrainerConfig.selection_metric,
                     help="what a better validation is: higher valid AUC - logloss "
                          "(FuxiCTR's monitor), lower logloss, or higher AUC (default "
                          "%(default)s)")
  group.add_argument("--clip-norm", type=float,
                     help="clip gradients to this global norm (default: no clipping)")
  group.add_argument("--batch-size", type=int, default=TrainerConfig.batch_size)
  group.add_argument("--learning-rate", type=float, default=TrainerConfig.learning_rate)
  group.add_argument("--distribution", choices=DISTRIBUTIONS,
                     default=TrainerConfig.distribution,
                     help="tf.distribute strategy (auto: MultiWorkerMirrored from TF_CONFIG)")
  group = parser.add_argument_group("evaluation (blessing)")
  group.add_argument("--auc-floor", type=float, default=EvaluationConfig.auc_floor,
                     help="blessing needs at least this eval AUC")
  group.add_argument("--max-auc-regression", type=float,
                     default=EvaluationConfig.max_auc_regression,
                     help="blessing refuses an AUC drop larger than this vs the last "
                          "blessed model")
  group.add_argument("--max-logloss-over-base-rate", type=float,
                     default=EvaluationConfig.max_logloss_over_base_rate,
                     help="blessing refuses an eval logloss more than this above the "
                          "base-rate predictor's (constant = eval label mean); default "
                          "%(default)s: no worse than it")
  group.add_argument("--max-calibration-error", type=float,
                     default=EvaluationConfig.max_calibration_error,
                     help="blessing refuses |mean prediction / mean label - 1| above this "
                          "(default %(default)s)")


def resolve_source(args, work_dir: str) -> SourceConfig:
  """--data/--format/--data-path/--min-positive-rating -> SourceConfig
  (generating the synthetic log if asked).

  `--format movielens --data-path DIR` without --data reads DIR whatever its
  MovieLens layout; a named --data finds its set (components/datasets.py).

  Raises:
    datasets.DatasetNotFound: a named data set is not found.
    SystemExit: a local MovieLens directory holds no layout (the message lists
      what was looked for), or the format cannot be told (source_for_path).
  """
  rating = getattr(args, "min_positive_rating", SourceConfig.min_positive_rating)
  data = args.data
  if data is None and args.format == "movielens" and args.data_path:
    data = args.data_path
  elif data is None:
    data = MOVIELENS_100K
  if data in datasets.NAMES:
    dataset = datasets.get(data)
    return SourceConfig(format=dataset.format, path=datasets.locate(data, args.data_path),
                        min_positive_rating=rating)
  if data == SYNTHETIC:
    from components import synth  # pylint: disable=g-import-not-at-top
    path = os.path.join(work_dir, "synthetic_log.csv")
    synth.write(synth.SynthConfig(events=args.synth_events, seed=args.seed), path)
    return SourceConfig(format="csv", path=path)
  source = source_for_path(data, args.format, rating)
  if source.format == "movielens" and "://" not in source.path:
    try:
      movielens.detect(source.path)  # a clear error now, not in the middle of a run
    except (OSError, ValueError) as error:
      raise SystemExit(f"eta: {error}") from error
  return source


def source_for_path(path: str, fmt: Optional[str] = None,
                    min_positive_rating: float = SourceConfig.min_positive_rating
                    ) -> SourceConfig:
  """A click log at `path` (local or remote; never opened here) in `fmt`, or in
  the format its extension implies.

  Raises:
    SystemExit: no --format and the extension names none.
  """
  fmt = fmt or formats.format_of_path(path)
  if fmt is None:
    raise SystemExit(f"eta: cannot tell the format of {path!r} from its extension; pass "
                     f"--format ({', '.join(formats.FORMAT_NAMES)})")
  return SourceConfig(format=fmt, path=path, min_positive_rating=min_positive_rating)


def ingest_config_from_args(args) -> IngestConfig:
  split, cutoff = args.split, None
  if args.eval_cutoff is not None:
    from components.parsing import parse_timestamp  # pylint: disable=g-import-not-at-top
    split, cutoff = "global_time", parse_timestamp(args.eval_cutoff)
  return IngestConfig(max_history=args.max_history, split=split,
                      eval_fraction=args.eval_fraction, eval_cutoff=cutoff,
                      valid_fraction=args.valid_fraction,
                      negatives_per_positive=args.negatives_per_positive,
                      history_includes_non_clicked=args.history_includes_non_clicked,
                      seed=args.seed)


def config_from_args(args, source: SourceConfig) -> EtaConfig:
  """The one EtaConfig of a run, from the flags of the groups above.

  The format's model defaults apply (components.formats), then the model flags
  given; a default k or S above the chosen L is clamped to L.
  """
  base = EtaConfig.for_source(source)
  overrides = {name: getattr(args, name) for name in _MODEL_FLAGS
               if getattr(args, name, None) is not None}
  model = base.model.replace_clamped(name=args.model, **overrides)
  trainer = TrainerConfig(train_steps=args.train_steps, batch_size=args.batch_size,
                          learning_rate=args.learning_rate, distribution=args.distribution,
                          validate_every_steps=args.validate_every_steps,
                          patience=args.patience, selection_metric=args.selection_metric,
                          clip_norm=args.clip_norm)
  evaluation = EvaluationConfig(
      auc_floor=args.auc_floor, max_auc_regression=args.max_auc_regression,
      max_logloss_over_base_rate=args.max_logloss_over_base_rate,
      max_calibration_error=args.max_calibration_error)
  return _with_features(base.replace(ingest=ingest_config_from_args(args), model=model,
                                    trainer=trainer, evaluation=evaluation), args)


def parse_variant(text: str):
  """`LABEL=MODEL:FIELD=VALUE,...` (eta compare --variant) -> pipeline.compare.Variant.

  Values are read as the field's type: true/false, integers, floats, `none`, a
  comma-free string; `a+b` is a tuple (mlp_units=128+64).

  Raises:
    SystemExit: the text is malformed, or names an unknown model or field.
  """
  from pipeline.compare import Variant  # pylint: disable=g-import-not-at-top
  label, _, rest = text.partition("=")
  model, _, settings = rest.partition(":")
  if not label or not model:
    raise SystemExit(f"eta: --variant {text!r}: expected LABEL=MODEL[:FIELD=VALUE,...]")
  if model not in MODEL_NAMES or label in MODEL_NAMES:
    raise SystemExit(f"eta: --variant {text!r}: MODEL must be one of {MODEL_NAMES} and "
                     "LABEL none of them")
  changes = {}
  for item in filter(None, settings.split(",")):
    key, sep, value = item.partition("=")
    if not sep:
      raise SystemExit(f"eta: --variant {text!r}: {item!r} is not FIELD=VALUE")
    changes[key.strip()] = _variant_value(value.strip())
  try:
    return Variant(label, model, changes)
  except (TypeError, ValueError) as error:
    raise SystemExit(f"eta: --variant {text!r}: {error}") from error


def _variant_value(text: str):
  lowered = text.lower()
  if lowered in ("true", "false"):
    return lowered == "true"
  if lowered == "none":
    return None
  if "+" in text:
    return tuple(_variant_value(part) for part in text.split("+"))
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def ingest_config(args) -> EtaConfig:
  """The EtaConfig of `eta ingest` (source and ingest sections only)."""
  return _with_features(EtaConfig(source=resolve_source(args, args.output),
                                  ingest=ingest_config_from_args(args)), args)

