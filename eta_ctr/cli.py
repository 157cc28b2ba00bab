"""The `eta` command line: one entry point per stage of the data flow.

  eta synth   --events N --output FILE           a synthetic click log
  eta ingest  --data ... --output DIR [beam args] click log -> point-in-time tf.Examples
  eta run     --data ... [--model eta] [beam args] the whole TFX pipeline, ingest to push
  eta compare --data ... --models a,b --seeds N --output DIR   models on one Transform output
  eta serve   --model-dir DIR                      the pushed model behind the TF Serving API
  eta predict --server localhost:8500 ...          rank candidates with the stock client
  eta kubeflow compile --output pipeline.json     the same pipeline as a KFP v2 spec

Unrecognised --flags are passed to Beam as pipeline options (e.g. --runner=...).
"""

import argparse
import dataclasses
import logging
import os
import sys

import warnings

# Quiet TensorFlow's C++ start-up chatter (CUDA probes on CPU machines).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from typing import List, Optional

from eta_ctr.config import (DISTRIBUTIONS, FORMATS, MODEL_NAMES, RETRIEVAL_KERNELS, SPLIT_MODES,
                            EtaConfig, IngestConfig, ModelConfig, SourceConfig, TrainerConfig)

log = logging.getLogger("eta")

_EXTENSION_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def _add_data_args(parser: argparse.ArgumentParser):
  group = parser.add_argument_group("data")
  group.add_argument("--data", default="movielens-100k",
                     help="movielens-100k, synthetic, or a PATH (file, directory or glob)")
  group.add_argument("--format", choices=FORMATS,
                     help="format of PATH (default: from its extension)")
  group.add_argument("--data-path",
                     help="directory holding MovieLens-100k (else $ETA_DATA_DIR, "
                          "../shared/datasets, then a download)")
  group.add_argument("--synth-events", type=int, default=100_000,
                     help="events of the generated log for --data synthetic")


def _add_ingest_args(parser: argparse.ArgumentParser):
  defaults = IngestConfig()
  group = parser.add_argument_group("ingest")
  group.add_argument("--max-history", type=int, default=defaults.max_history)
  group.add_argument("--split", choices=SPLIT_MODES, default=defaults.split)
  group.add_argument("--eval-fraction", type=float, default=defaults.eval_fraction)
  group.add_argument("--eval-cutoff",
                     help="unix seconds or ISO-8601; events at or after it go to eval "
                          "(implies --split global_time)")
  group.add_argument("--negatives-per-positive", type=int,
                     default=defaults.negatives_per_positive)
  group.add_argument("--history-includes-non-clicked", action="store_true")
  group.add_argument("--seed", type=int, default=defaults.seed)


def resolve_source(args, work_dir: str) -> SourceConfig:
  """--data/--format/--data-path -> SourceConfig (generating the synthetic log if asked)."""
  if args.data == "movielens-100k":
    from components import datasets
    return SourceConfig(format="movielens",
                        path=datasets.locate_movielens_100k(args.data_path))
  if args.data == "synthetic":
    from components import synth
    path = os.path.join(work_dir, "synthetic_log.csv")
    synth.write(synth.SynthConfig(events=args.synth_events, seed=args.seed), path)
    return SourceConfig(format="csv", path=path)
  fmt = args.format or _EXTENSION_FORMATS.get(os.path.splitext(args.data)[1].lower())
  if fmt is None:
    raise SystemExit(f"eta: cannot tell the format of {args.data!r}; pass --format "
                     f"({', '.join(FORMATS)})")
  return SourceConfig(format=fmt, path=args.data)


def ingest_config_from_args(args) -> IngestConfig:
  split, cutoff = args.split, None
  if args.eval_cutoff is not None:
    from components.parsing import parse_timestamp
    split, cutoff = "global_time", parse_timestamp(args.eval_cutoff)
  return IngestConfig(max_history=args.max_history, split=split,
                      eval_fraction=args.eval_fraction, eval_cutoff=cutoff,
                      negatives_per_positive=args.negatives_per_positive,
                      history_includes_non_clicked=args.history_includes_non_clicked,
                      seed=args.seed)


def cmd_ingest(args, beam_args: List[str]) -> int:
  from components import report
  from components.ingest_job import run_ingest
  os.makedirs(args.output, exist_ok=True)
  config = EtaConfig(source=resolve_source(args, args.output),
                     ingest=ingest_config_from_args(args))
  result = run_ingest(config, args.output, beam_args or None)
  print(report.format_report(result))
  print(f"\nexamples: {args.output}/Split-train, {args.output}/Split-eval\n"
        f"report:   {args.output}/ingest_report.json\n"
        f"rejected: {args.output}/dead_letter/")
  return 0


def _add_model_args(parser: argparse.ArgumentParser):
  group = parser.add_argument_group("model (defaults: the paper's; L=256, S=16, k=16 on MovieLens)")
  group.add_argument("--model", choices=MODEL_NAMES, default="eta")
  group.add_argument("--long-seq-len", type=int, help="L")
  group.add_argument("--short-seq-len", type=int, help="S")
  group.add_argument("--top-k", type=int, help="k, behaviours retrieved from the long sequence")
  group.add_argument("--hash-bits", type=int)
  group.add_argument("--embedding-dim", type=int)
  group.add_argument("--attention", choices=("dot", "din"))
  group.add_argument("--retrieval-kernel", choices=RETRIEVAL_KERNELS,
                     help="ETA's Hamming top-k: auto (fused in training, stock ops in the "
                          "export), fused (also exported; built-in server only) or stock")
  group = parser.add_argument_group("trainer")
  group.add_argument("--train-steps", type=int, default=TrainerConfig.train_steps)
  group.add_argument("--batch-size", type=int, default=TrainerConfig.batch_size)
  group.add_argument("--learning-rate", type=float, default=TrainerConfig.learning_rate)
  group.add_argument("--distribution", choices=DISTRIBUTIONS, default="auto",
                     help="tf.distribute strategy (auto: MultiWorkerMirrored from TF_CONFIG)")


def config_from_args(args, source: SourceConfig) -> EtaConfig:
  """The one EtaConfig of a run, from the CLI flags."""
  base = EtaConfig.for_movielens() if source.format == "movielens" else EtaConfig()
  overrides = {name: getattr(args, name) for name in
               ("long_seq_len", "short_seq_len", "top_k", "hash_bits", "embedding_dim",
                "attention", "retrieval_kernel") if getattr(args, name, None) is not None}
  model = dataclasses.replace(base.model, name=args.model, **overrides)
  if args.top_k is None and model.top_k > model.long_seq_len:
    model = dataclasses.replace(model, top_k=model.long_seq_len)
  if args.short_seq_len is None and model.short_seq_len > model.long_seq_len:
    model = dataclasses.replace(model, short_seq_len=model.long_seq_len)
  trainer = TrainerConfig(train_steps=args.train_steps, batch_size=args.batch_size,
                          learning_rate=args.learning_rate, distribution=args.distribution)
  return EtaConfig(source=source, ingest=ingest_config_from_args(args), model=model,
                   trainer=trainer)


def cmd_run(args, beam_args: List[str]) -> int:
  from pipeline import summary as run_summary
  from pipeline.local_runner import run_local
  from pipeline.progress import ComponentProgress
  os.makedirs(args.pipeline_root, exist_ok=True)
  config = config_from_args(args, resolve_source(args, args.pipeline_root))
  log.info("pipeline root %s, model %s (L=%d, S=%d, k=%d, %d hash bits), %d train steps",
           args.pipeline_root, config.model.name, config.model.long_seq_len,
           config.model.short_seq_len, config.model.top_k, config.model.hash_bits,
           config.trainer.train_steps)
  from pipeline.pipeline import COMPONENT_IDS
  progress = ComponentProgress(COMPONENT_IDS)
  try:
    with progress:
      run_local(config, args.pipeline_root, args.serving_dir,
                beam_pipeline_args=beam_args or None, auc_floor=args.auc_floor,
                max_auc_regression=args.max_auc_regression)
  except Exception as error:  # name the component, then show the cause
    where = progress.current or "the pipeline set-up"
    print(f"\neta run FAILED in {where}: {type(error).__name__}: {error}", file=sys.stderr)
    if args.verbose:
      raise
    return 1
  result = run_summary.run_summary(args.pipeline_root)
  run_summary.write_summary(result, os.path.join(args.pipeline_root, "run_summary.json"))
  print("\n" + run_summary.format_summary(result, args.serving_dir))
  return 0


def cmd_compare(args, beam_args: List[str]) -> int:
  from pipeline.compare import compare, results_table
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  unknown = set(models) - set(MODEL_NAMES)
  if unknown:
    raise SystemExit(f"eta: unknown models {sorted(unknown)}; expected {MODEL_NAMES}")
  os.makedirs(args.output, exist_ok=True)
  config = config_from_args(args, resolve_source(args, args.output))
  results = compare(config, models, args.seeds, args.output, beam_args or None)
  print(results_table(results))
  print(f"\nwritten: {args.output}/results.json, results.md, results.png")
  return 0


def cmd_synth(args, beam_args: List[str]) -> int:
  from components import synth
  fields = {f.name for f in dataclasses.fields(synth.SynthConfig)}
  overrides = {k: v for k, v in vars(args).items() if k in fields and v is not None}
  count = synth.write(synth.SynthConfig(**overrides), args.output, args.format)
  print(f"wrote {count:,} events to {args.output}")
  return 0


def _add_training_command(commands, name: str, help_text: str) -> argparse.ArgumentParser:
  """A subcommand that takes the data, ingest, model and trainer flags."""
  parser = commands.add_parser(name, help=help_text)
  _add_data_args(parser)
  _add_ingest_args(parser)
  _add_model_args(parser)
  return parser


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="eta", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("-v", "--verbose", action="store_true")
  commands = parser.add_subparsers(dest="command", required=True)

  ingest = commands.add_parser("ingest", help="click log -> point-in-time tf.Examples (Beam)")
  _add_data_args(ingest)
  _add_ingest_args(ingest)
  ingest.add_argument("--output", required=True, help="output directory")
  ingest.set_defaults(handler=cmd_ingest)

  run = _add_training_command(commands, "run", "the TFX pipeline: ingest, statistics, "
                              "schema, Transform, Trainer, Evaluator, Pusher")
  run.add_argument("--pipeline-root", default="out/pipeline")
  run.add_argument("--serving-dir", default="out/serving",
                   help="Pusher destination: versioned SavedModel directories")
  run.add_argument("--auc-floor", type=float, default=0.6,
                   help="blessing needs at least this eval AUC")
  run.add_argument("--max-auc-regression", type=float, default=0.01,
                   help="blessing refuses an AUC drop larger than this vs the last blessed model")
  run.set_defaults(handler=cmd_run)

  compare = _add_training_command(commands, "compare", "train several models on the "
                                  "same Transform output over several seeds; table + chart")
  compare.add_argument("--models", default="avg_pool,din,din_long,sim_hard,sdim,eta")
  compare.add_argument("--seeds", type=int, default=3)
  compare.add_argument("--output", required=True)
  compare.set_defaults(handler=cmd_compare)

  from serving.cli import add_commands as add_serving_commands
  add_serving_commands(commands)
  from kubeflow.cli import add_commands as add_kubeflow_commands
  add_kubeflow_commands(commands)
  from benchmarks.cli import add_commands as add_bench_commands
  add_bench_commands(commands)

  synth = commands.add_parser("synth", help="write a deterministic synthetic click log")
  synth.add_argument("--output", required=True, help="output file")
  synth.add_argument("--format", choices=("csv", "jsonl", "parquet"), default="csv")
  synth.add_argument("--events", type=int, default=100_000)
  synth.add_argument("--mean-events-per-user", dest="mean_events_per_user", type=int)
  synth.add_argument("--max-events-per-user", dest="max_events_per_user", type=int)
  synth.add_argument("--items", type=int)
  synth.add_argument("--categories", type=int)
  synth.add_argument("--seed", type=int, default=0)
  synth.set_defaults(handler=cmd_synth)
  return parser


def _configure_logging(verbose: bool):
  """Our own progress at INFO; the libraries' chatter only when --verbose."""
  warnings.filterwarnings("ignore", category=FutureWarning)
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                      datefmt="%H:%M:%S", force=True)
  for ours in ("eta", "components", "models", "pipeline", "serving", "kubeflow", "benchmarks"):
    logging.getLogger(ours).setLevel(logging.INFO)
  if not verbose:
    # TFX logs component start/finish at INFO on absl; keep the records flowing
    # (the progress display reads them) but show only errors of it.
    absl = logging.getLogger("absl")
    absl.setLevel(logging.INFO)
    absl.propagate = False
    errors = logging.StreamHandler()
    errors.setLevel(logging.ERROR)
    absl.handlers = [errors]
    for noisy in ("apache_beam", "tensorflow", "root"):
      logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: Optional[List[str]] = None) -> int:
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  unknown = [a for a in extra if not a.startswith("--")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  _configure_logging(args.verbose)
  return args.handler(args, extra)


if __name__ == "__main__":
  sys.exit(main())
