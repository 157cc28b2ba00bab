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
from typing import List, Optional

from benchmarks import cli as benchmarks_cli
from components import synth
from eta_ctr import flags, kubeflow_cli, runtime
from eta_ctr.config import MODEL_NAMES
from serving import cli as serving_cli

log = logging.getLogger("eta")


def cmd_ingest(args, beam_args: List[str]) -> int:
  from components import report
  from components.ingest_job import run_ingest
  os.makedirs(args.output, exist_ok=True)
  try:
    config = flags.ingest_config(args)
    result = run_ingest(config, args.output, beam_args or None)
  except (ValueError, OSError) as error:  # a file the log cannot be read from, a split
    print(f"\neta ingest FAILED: {type(error).__name__}: {error}", file=sys.stderr)
    if args.verbose:
      raise
    return 1
  print(report.format_report(result))
  splits = ", ".join(f"{args.output}/Split-{split}" for split in config.ingest.split_names)
  print(f"\nexamples: {splits}\n"
        f"report:   {args.output}/ingest_report.json\n"
        f"rejected: {args.output}/dead_letter/")
  return 0


def cmd_run(args, beam_args: List[str]) -> int:
  from pipeline import summary as run_summary
  from pipeline.local_runner import run_local
  from pipeline.progress import ComponentProgress
  os.makedirs(args.pipeline_root, exist_ok=True)
  try:
    config = flags.config_from_args(args, flags.resolve_source(args, args.pipeline_root))
  except OSError as error:  # no such data set or log
    print(f"\neta run FAILED: {type(error).__name__}: {error}", file=sys.stderr)
    if args.verbose:
      raise
    return 1
  log.info("pipeline root %s, model %s (L=%d, S=%d, k=%d, %d hash bits), %d train steps",
           args.pipeline_root, config.model.name, config.model.long_seq_len,
           config.model.short_seq_len, config.model.top_k, config.model.hash_bits,
           config.trainer.train_steps)
  from pipeline.pipeline import COMPONENT_IDS
  progress = ComponentProgress(COMPONENT_IDS)
  try:
    with progress:
      run_local(config, args.pipeline_root, args.serving_dir,
                beam_pipeline_args=beam_args or None)
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
  variants = [flags.parse_variant(text) for text in args.variant]
  os.makedirs(args.output, exist_ok=True)
  config = flags.config_from_args(args, flags.resolve_source(args, args.output))
  try:
    results = compare(config, models, args.seeds, args.output, beam_args or None,
                      variants=variants, reference=args.reference)
  except ValueError as error:
    raise SystemExit(f"eta: {error}") from error
  print(results_table(results))
  print(f"\nwritten: {args.output}/results.json, results.md, results.png")
  return 0


def cmd_synth(args, beam_args: List[str]) -> int:
  fields = {f.name for f in dataclasses.fields(synth.SynthConfig)}
  overrides = {k: v for k, v in vars(args).items() if k in fields and v is not None}
  count = synth.write(synth.SynthConfig(**overrides), args.output, args.format)
  print(f"wrote {count:,} events to {args.output}")
  return 0


def _add_training_command(commands, name: str, help_text: str) -> argparse.ArgumentParser:
  """A subcommand that takes the data, ingest, model and trainer flags."""
  parser = commands.add_parser(name, help=help_text)
  flags.add_data_args(parser)
  flags.add_ingest_args(parser)
  flags.add_model_args(parser)
  return parser


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="eta", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("-v", "--verbose", action="store_true",
                      help="log the libraries' progress too, and show tracebacks")
  commands = parser.add_subparsers(dest="command", required=True)

  ingest = commands.add_parser("ingest", help="click log -> point-in-time tf.Examples (Beam)")
  flags.add_data_args(ingest)
  flags.add_ingest_args(ingest)
  ingest.add_argument("--output", required=True, help="output directory")
  ingest.set_defaults(handler=cmd_ingest)

  run = _add_training_command(commands, "run", "the TFX pipeline: ingest, statistics, "
                              "schema, Transform, Trainer, Evaluator, Pusher")
  run.add_argument("--pipeline-root", default="out/pipeline")
  run.add_argument("--serving-dir", default="out/serving",
                   help="Pusher destination: versioned SavedModel directories")
  run.set_defaults(handler=cmd_run)

  compare = _add_training_command(commands, "compare", "train several models on the "
                                  "same Transform output over several seeds; table + chart")
  compare.add_argument("--models", default=",".join(MODEL_NAMES),
                       help="comma-separated, of " + ", ".join(MODEL_NAMES))
  compare.add_argument("--seeds", type=int, default=5,
                       help="runs per model (seed offsets 0..N-1); claims are mean ± std "
                            "over them and differences vs eta paired by seed (default "
                            "%(default)s)")
  compare.add_argument("--variant", action="append", default=[], metavar="LABEL=MODEL:K=V,..",
                       help="also compare MODEL with changed ModelConfig/TrainerConfig "
                            "settings under LABEL, e.g. eta_item=eta:hash_category=false or "
                            "eta_k32=eta:top_k=32,hash_bits=128; repeatable")
  compare.add_argument("--reference", default="eta",
                       help="the model or variant every other is differenced against, "
                            "seed by seed (default %(default)s)")
  compare.add_argument("--output", required=True)
  compare.set_defaults(handler=cmd_compare)

  serving_cli.add_commands(commands)
  kubeflow_cli.add_commands(commands)
  benchmarks_cli.add_commands(commands)

  synth_parser = commands.add_parser("synth", help="write a deterministic synthetic click log")
  synth_parser.add_argument("--output", required=True, help="output file")
  synth_parser.add_argument("--format", choices=tuple(synth.WRITERS), default="csv")
  synth_parser.add_argument("--events", type=int, default=100_000)
  synth_parser.add_argument("--mean-events-per-user", dest="mean_events_per_user", type=int)
  synth_parser.add_argument("--max-events-per-user", dest="max_events_per_user", type=int)
  synth_parser.add_argument("--items", type=int)
  synth_parser.add_argument("--categories", type=int)
  synth_parser.add_argument("--seed", type=int, default=0)
  synth_parser.set_defaults(handler=cmd_synth)
  return parser


def _configure_logging(verbose: bool):
  """Our own progress at INFO; the libraries' chatter only when --verbose."""
  warnings.filterwarnings("ignore", category=FutureWarning)
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  # -v: the libraries' INFO (TFX, Beam) and our own DEBUG; Beam's DEBUG is noise.
  logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                      datefmt="%H:%M:%S", force=True)
  for ours in ("eta", "components", "models", "pipeline", "serving", "benchmarks"):
    logging.getLogger(ours).setLevel(logging.DEBUG if verbose else logging.INFO)
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
  """The `eta` command. Sets TensorFlow's environment before anything imports it,
  and hides the command line from libraries that parse `sys.argv` themselves
  (TFX executors parse it with absl, where `-v` would mean `--verbosity`)."""
  runtime.prepare()
  parser = build_parser()
  args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
  unknown = [a for a in extra if not a.startswith("--")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  _configure_logging(args.verbose)
  # Beam options travel explicitly (beam_pipeline_args); nothing else may read ours.
  saved_argv, sys.argv = sys.argv, sys.argv[:1]
  try:
    return args.handler(args, extra)
  finally:
    sys.argv = saved_argv


if __name__ == "__main__":
  sys.exit(main())
