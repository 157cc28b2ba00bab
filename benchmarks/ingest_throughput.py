"""Beam ingest events/s on synthetic logs of growing size, and how the cost scales.

Each size runs in a fresh worker process: it writes a synthetic CSV log with
`components.synth` (timed apart), then runs the ingest job (`run_ingest`) on it
with the given Beam flags (default DirectRunner, in process). The worker's peak
RSS is therefore that size's alone. Only the numbers are kept: each size's log
and outputs are deleted once measured, unless --keep.
"""

import argparse
import contextlib
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

from benchmarks import report

log = logging.getLogger(__name__)

FULL_EVENTS = (100_000, 1_000_000, 10_000_000)
SMOKE_EVENTS = (2_000, 5_000)
COLUMNS = ("events", "users", "examples", "synth_s", "wall_s", "events_per_s", "cpu_s",
           "events_per_cpu_s", "load_1m_before", "peak_rss_mb", "written_mb", "history_mean",
           "history_p90", "exponent", "cpu_exponent")
HEADERS = ("events", "users", "examples", "synth s", "Beam wall s", "events/s", "Beam CPU s",
           "events/CPU s", "load (1 min)", "peak RSS MB", "written MB", "history mean",
           "history p90", "exponent (wall)", "exponent (CPU)")


def add_arguments(parser) -> None:
  parser.add_argument("--events", type=_event_list, default=None,
                      help="comma-separated log sizes (default 100000,1000000,10000000; "
                           "--smoke: 2000,5000)")
  parser.add_argument("--work-dir", default=None,
                      help="where the synthetic logs and ingest outputs go (default a "
                           "temporary directory under --output)")
  parser.add_argument("--keep", action="store_true",
                      help="keep each size's log and ingest outputs instead of deleting them")
  parser.add_argument("--max-history", type=int, default=None,
                      help="ingest history cap (default IngestConfig's)")
  parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic log")
  parser.add_argument("--timeout-min", type=float, default=None,
                      help="give up on a size after this many minutes (larger sizes are skipped)")


def _event_list(text: str) -> List[int]:
  sizes = [int(float(part)) for part in text.split(",") if part.strip()]
  if not sizes or min(sizes) < 1:
    raise argparse.ArgumentTypeError(f"needs positive sizes, got {text!r}")
  return sorted(set(sizes))


def _sizes(args) -> List[int]:
  if getattr(args, "events", None):
    return list(args.events)
  return list(SMOKE_EVENTS if getattr(args, "smoke", False) else FULL_EVENTS)


def run(args) -> Dict:
  """Measures every size; writes ingest.json, ingest.md and ingest.png under args.output."""
  output = getattr(args, "output", "out/bench")
  os.makedirs(output, exist_ok=True)
  own_work_dir = not getattr(args, "work_dir", None)
  work_dir = (tempfile.mkdtemp(prefix="ingest_work_", dir=output) if own_work_dir
              else args.work_dir)
  timeout = args.timeout_min * 60 if getattr(args, "timeout_min", None) else None
  with _sigterm_as_exit():
    return _run_sizes(args, output, work_dir, own_work_dir, timeout)


def _run_sizes(args, output: str, work_dir: str, own_work_dir: bool,
               timeout: Optional[float]) -> Dict:
  """One worker per size, smallest first; stops at the first failure."""
  rows: List[Dict] = []
  try:
    for events in _sizes(args):
      log.info("bench ingest: %s events (synth + Beam ingest in a worker)", f"{events:,}")
      row = _measure(events, work_dir, args, timeout)
      rows.append(row)
      _add_exponents(rows)
      result = _write_outputs(output, rows, args)  # after each size: partial results survive
      if "error" in row:
        log.error("bench ingest: %s events failed; skipping larger sizes: %s",
                  f"{events:,}", row["error"].splitlines()[-1] if row["error"] else "")
        break
      log.info("bench ingest: %s events: %.1fs Beam, %s events/s, peak RSS %.0f MB",
               f"{events:,}", row["wall_s"], f"{row['events_per_s']:,.0f}", row["peak_rss_mb"])
  finally:
    if getattr(args, "keep", False):
      log.info("bench ingest: logs and ingest outputs kept under %s", work_dir)
    elif own_work_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  if getattr(args, "smoke", False) and any("error" in row for row in rows):
    raise RuntimeError(f"bench ingest failed: {rows[-1]['error']}")  # CI must notice
  return result


@contextlib.contextmanager
def _sigterm_as_exit():
  """SIGTERM raises SystemExit here, so subprocess.run kills the running worker and the
  `finally` blocks delete the work directories (a killed run otherwise leaves a worker
  of several GB and its log behind)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return

  def _exit(signum, frame):
    raise SystemExit(128 + signum)

  previous = signal.signal(signal.SIGTERM, _exit)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def _measure(events: int, work_dir: str, args, timeout: Optional[float]) -> Dict:
  """One size in a fresh worker; its directory is removed afterwards unless --keep."""
  size_dir = os.path.join(work_dir, f"events_{events}")
  worker_args = ["--events", str(events), "--work-dir", size_dir, "--seed", str(args.seed)]
  if getattr(args, "max_history", None):
    worker_args += ["--max-history", str(args.max_history)]
  # Beam flags start with '--'; '=' keeps argparse from reading them as worker flags.
  worker_args += [f"--beam-arg={flag}" for flag in getattr(args, "beam_args", None) or []]
  try:
    return report.run_worker("benchmarks.ingest_throughput", worker_args, timeout=timeout)
  except (RuntimeError, subprocess.TimeoutExpired) as error:
    return {"events": events, "error": str(error)[-2000:]}
  finally:
    if not getattr(args, "keep", False):
      shutil.rmtree(size_dir, ignore_errors=True)


def _add_exponents(rows: List[Dict]) -> None:
  """exponent = log(wall2/wall1) / log(n2/n1) against the previous measured size."""
  done = [row for row in rows if "error" not in row]
  for previous, row in zip(done, done[1:]):
    row["exponent"] = scaling_exponent(previous["events"], previous["wall_s"],
                                       row["events"], row["wall_s"])
    if "cpu_s" in row and "cpu_s" in previous:
      row["cpu_exponent"] = scaling_exponent(previous["events"], previous["cpu_s"],
                                             row["events"], row["cpu_s"])


def scaling_exponent(n1: float, wall1: float, n2: float, wall2: float) -> float:
  """x in wall ~ n^x between two sizes: 1 is linear, below 1 means fixed costs still weigh."""
  if n1 <= 0 or n2 <= 0 or n1 == n2 or wall1 <= 0 or wall2 <= 0:
    return float("nan")
  return math.log(wall2 / wall1) / math.log(n2 / n1)


def _write_outputs(output: str, rows: List[Dict], args) -> Dict:
  info = report.machine_info()
  smoke = getattr(args, "smoke", False)
  data = {"suite": "ingest", "smoke": smoke, "machine": info,
          "beam_args": list(getattr(args, "beam_args", None) or []), "rows": rows}
  json_path = report.write_json(os.path.join(output, "ingest.json"), data)
  png_path = _plot(os.path.join(output, "ingest.png"), rows)
  markdown = _markdown(rows, data, png_path)
  md_path = report.write_text(os.path.join(output, "ingest.md"), markdown)
  return {"markdown": markdown, "rows": rows, "json": json_path, "md": md_path, "png": png_path}


def _markdown(rows: List[Dict], data: Dict, png_path: Optional[str]) -> str:
  info = data["machine"]
  runner = " ".join(data["beam_args"]) or "DirectRunner (in process)"
  done = [row for row in rows if "error" not in row]
  lines = [
      "## Ingest throughput\n",
      f"Beam ingest of synthetic CSV logs (`components.synth`, {runner}) on "
      f"{info.get('cpu', '?')}, {info['cpus']} CPUs"
      f"{' (SMOKE: tiny sizes, not a measurement)' if data['smoke'] else ''}. "
      "One fresh process per size; Beam wall time excludes generating the log (synth s). "
      f"The machine has {info['cpus']} CPUs: a load above that means other jobs shared them, "
      "which slows wall time but hardly CPU time. "
      "The exponent x fits time ~ events^x (wall or CPU) between consecutive sizes: 1 is linear, "
      "below 1 means fixed start-up costs still weigh, above 1 means the cost grows "
      "faster than the data.\n",
      report.markdown_table(done, COLUMNS, HEADERS),
  ]
  if len(done) >= 2:
    first, last = done[0], done[-1]
    overall = scaling_exponent(first["events"], first["wall_s"], last["events"], last["wall_s"])
    lines.append(f"From {first['events']:,} to {last['events']:,} events the Beam wall time "
                 f"grows as events^{overall:.2f}{_cpu_growth(first, last)} and throughput "
                 f"goes from {first['events_per_s']:,.0f} to {last['events_per_s']:,.0f} events/s; "
                 f"peak RSS from {first['peak_rss_mb']:,.0f} to {last['peak_rss_mb']:,.0f} MB.\n")
  for row in rows:
    if "error" in row:
      reason = (row["error"].strip().splitlines() or ["?"])[-1]
      lines.append(f"**{row['events']:,} events failed** (larger sizes skipped): `{reason}`\n")
  if png_path:
    lines.append(f"![ingest throughput]({os.path.basename(png_path)})\n")
  return "\n".join(lines)


def _cpu_growth(first: Dict, last: Dict) -> str:
  if "cpu_s" not in first or "cpu_s" not in last:
    return ""
  exponent = scaling_exponent(first["events"], first["cpu_s"], last["events"], last["cpu_s"])
  return f" (CPU time as events^{exponent:.2f})"


def _plot(path: str, rows: Sequence[Dict]) -> Optional[str]:
  """events/s and wall time against events (log x), with a linear-cost reference."""
  done = [row for row in rows if "error" not in row]
  if not done:
    return None
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  xs = [row["events"] for row in done]
  figure, (rate_axes, wall_axes) = plt.subplots(1, 2, figsize=(11, 4.5))
  rate_axes.plot(xs, [row["events_per_s"] for row in done], marker="o", label="events / wall s")
  if all("events_per_cpu_s" in row for row in done):
    rate_axes.plot(xs, [row["events_per_cpu_s"] for row in done], marker="s",
                   label="events / CPU s")
  rate_axes.set_ylabel("events per second")
  rate_axes.set_ylim(bottom=0)
  wall_axes.plot(xs, [row["wall_s"] for row in done], marker="o", label="Beam wall time")
  if all("cpu_s" in row for row in done):
    wall_axes.plot(xs, [row["cpu_s"] for row in done], marker="s", label="Beam CPU time")
  # A straight line through the smallest size: where a linear cost would be.
  wall_axes.plot(xs, [done[0]["wall_s"] * x / xs[0] for x in xs], linestyle="--",
                 color="grey", label="linear from smallest")
  wall_axes.set_yscale("log")
  wall_axes.set_ylabel("seconds")
  wall_axes.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
  for axes, title in ((rate_axes, "Throughput"), (wall_axes, "Wall time")):
    axes.set_xscale("log")
    axes.set_xticks(xs, [_short(x) for x in xs])
    axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes.set_xlabel("events in the log")
    axes.set_title(f"Beam ingest: {title.lower()}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path


def _short(n: int) -> str:
  """100000 -> '100k', 10000000 -> '10M'."""
  for divisor, suffix in ((10 ** 9, "G"), (10 ** 6, "M"), (10 ** 3, "k")):
    if n >= divisor:
      return f"{n / divisor:g}{suffix}"
  return str(n)


# ---- worker: one size, in its own process --------------------------------------------------

def measure_one(events: int, work_dir: str, seed: int = 0, max_history: Optional[int] = None,
                beam_args: Sequence[str] = ()) -> Dict:
  """Writes a log of `events` events and ingests it; the numbers of both steps."""
  from components import synth
  from components.ingest_job import run_ingest
  from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig

  log_path = os.path.join(work_dir, "log.csv")
  started = time.perf_counter()
  written = synth.write(synth.SynthConfig(events=events, seed=seed), log_path)
  synth_s = time.perf_counter() - started
  ingest = IngestConfig(max_history=max_history) if max_history else IngestConfig()
  config = EtaConfig(source=SourceConfig(format="csv", path=log_path), ingest=ingest)
  output_dir = os.path.join(work_dir, "ingest")
  load_before, cpu_before = os.getloadavg()[0], _cpu_seconds()
  result = run_ingest(config, output_dir, list(beam_args) or None)
  cpu_s = _cpu_seconds() - cpu_before
  wall_s = result["wall_time_s"]
  history = result["history_length"]
  return {
      "events": events, "rows_written": written, "rows_read": result["rows_read"],
      "rows_rejected": result["rows_rejected"]["total"], "users": result["users"],
      "examples": result["examples_total"], "examples_train": result["examples"]["train"],
      "examples_eval": result["examples"]["eval"], "max_history": ingest.max_history,
      "synth_s": round(synth_s, 3), "wall_s": wall_s,
      "events_per_s": events / wall_s if wall_s > 0 else float("nan"),
      # CPU time barely moves when other jobs share the cores; wall time does.
      "cpu_s": round(cpu_s, 3), "events_per_cpu_s": events / cpu_s if cpu_s > 0 else float("nan"),
      "load_1m_before": round(load_before, 2), "load_1m_after": round(os.getloadavg()[0], 2),
      "peak_rss_mb": round(_peak_rss_mb(), 1),
      "log_mb": round(os.path.getsize(log_path) / 2 ** 20, 3),
      "written_mb": round(_tree_bytes(output_dir) / 2 ** 20, 3),
      "history_mean": history["mean"], "history_p50": history["p50"],
      "history_p90": history["p90"], "history_p99": history["p99"],
      "history_max": history["max"],
  }


def _cpu_seconds() -> float:
  """User + system CPU seconds of this process (all threads) and its finished children."""
  times = os.times()
  return times.user + times.system + times.children_user + times.children_system


def _peak_rss_mb() -> float:
  """This process's peak RSS, or a child's if a Beam runner forked bigger workers."""
  import resource
  children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
  return max(report.peak_rss_mb(), children)


def _tree_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)


def _worker_main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description="one ingest_throughput measurement")
  parser.add_argument("--events", type=int, required=True)
  parser.add_argument("--work-dir", required=True)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--max-history", type=int, default=None)
  parser.add_argument("--beam-arg", action="append", default=[])
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
  for ours in ("components", "benchmarks"):
    logging.getLogger(ours).setLevel(logging.INFO)  # on stderr: shown if the worker fails
  os.makedirs(args.work_dir, exist_ok=True)
  report.print_result(measure_one(args.events, args.work_dir, args.seed, args.max_history,
                                  args.beam_arg))


if __name__ == "__main__":
  _worker_main()
