"""The `eta` command line: one entry point per stage of the data flow.

  eta synth   --events N --output FILE           a synthetic click log
  eta ingest  --data ... --output DIR [beam args] click log -> point-in-time tf.Examples

Unrecognised --flags are passed to Beam as pipeline options (e.g. --runner=...).
"""

import argparse
import dataclasses
import logging
import os
import sys

# Quiet TensorFlow's C++ start-up chatter (CUDA probes) unless asked for.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from typing import List, Optional

from eta_ctr.config import FORMATS, SPLIT_MODES, EtaConfig, IngestConfig, SourceConfig

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


def cmd_synth(args, beam_args: List[str]) -> int:
  from components import synth
  fields = {f.name for f in dataclasses.fields(synth.SynthConfig)}
  overrides = {k: v for k, v in vars(args).items() if k in fields and v is not None}
  count = synth.write(synth.SynthConfig(**overrides), args.output, args.format)
  print(f"wrote {count:,} events to {args.output}")
  return 0


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


def main(argv: Optional[List[str]] = None) -> int:
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  unknown = [a for a in extra if not a.startswith("--")]
  if unknown:
    parser.error(f"unrecognised arguments: {' '.join(unknown)}")
  logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                      datefmt="%H:%M:%S")
  for noisy in ("apache_beam", "absl", "tensorflow"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
  return args.handler(args, extra)


if __name__ == "__main__":
  sys.exit(main())
