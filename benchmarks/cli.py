"""`eta bench [SUITE] --output DIR [--smoke]`.

Suites (each also runs on its own: `eta bench serving ...`):
  serving    latency of scoring 1 user x B candidates against a history of L, per model
             and path (in process, SavedModel `score`, gRPC), with ratios and a breakdown
  train      training examples/s and peak memory against L (eta vs din_long)
  ingest     Beam ingest events/s on synthetic logs of growing size
  retrieval  recall of the SimHash top-k against the exact inner-product top-k, per bit count

`eta bench --output DIR` runs them all and writes DIR/report.md linking each
suite's JSON, Markdown and PNG files. --smoke shrinks every size so the whole
thing takes about a minute (CI runs that).
"""

import argparse
import importlib
import logging
import os
import time
from typing import Dict, List

from benchmarks import report

log = logging.getLogger(__name__)

SUITES = {
    "serving": "benchmarks.serving_latency",
    "train": "benchmarks.training_throughput",
    "ingest": "benchmarks.ingest_throughput",
    "retrieval": "benchmarks.retrieval_recall",
}


def _suite(name: str):
  return importlib.import_module(SUITES[name])


def add_commands(commands) -> None:
  """Adds `bench` to the `eta` subcommands."""
  bench = commands.add_parser("bench", help="benchmarks: serving, train, ingest, retrieval",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  _add_common(bench)
  suites = bench.add_subparsers(dest="suite")
  for name in SUITES:
    module = _suite(name)
    parser = suites.add_parser(name, help=module.__doc__.strip().splitlines()[0])
    _add_common(parser)
    module.add_arguments(parser)
  bench.set_defaults(handler=cmd_bench)


def _add_common(parser) -> None:
  parser.add_argument("--output", default=argparse.SUPPRESS,
                      help="directory for the JSON, Markdown and PNG results (default out/bench)")
  parser.add_argument("--smoke", action="store_true", default=argparse.SUPPRESS,
                      help="tiny sizes: checks the benchmark runs, measures nothing useful")


def _defaults(name: str, smoke: bool) -> argparse.Namespace:
  """A suite's own defaults (as its parser would give them)."""
  parser = argparse.ArgumentParser()
  _suite(name).add_arguments(parser)
  args = parser.parse_args([])
  args.smoke = smoke
  return args


def cmd_bench(args, beam_args: List[str]) -> int:
  output = getattr(args, "output", "out/bench")
  smoke = getattr(args, "smoke", False)
  os.makedirs(output, exist_ok=True)
  names = [args.suite] if args.suite else list(SUITES)
  sections: Dict[str, str] = {}
  for name in names:
    suite_args = args if args.suite else _defaults(name, smoke)
    suite_args.output, suite_args.smoke, suite_args.beam_args = output, smoke, beam_args
    log.info("bench %s: starting%s", name, " (smoke)" if smoke else "")
    started = time.time()
    result = _suite(name).run(suite_args)
    log.info("bench %s: done in %.0fs", name, time.time() - started)
    sections[name] = result["markdown"]
    print(result["markdown"])
  if not args.suite:
    info = report.machine_info()
    header = (f"# eta bench report\n\nMeasured {info['time']} on {info.get('cpu', '?')}, "
              f"{info['cpus']} CPUs, Python {info['python']}"
              f"{' (SMOKE: tiny sizes, not a measurement)' if smoke else ''}.\n\n")
    report.write_text(os.path.join(output, "report.md"),
                      header + "\n".join(sections[name] for name in names))
    log.info("bench: report at %s", os.path.join(output, "report.md"))
  return 0
