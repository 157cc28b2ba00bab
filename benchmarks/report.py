"""What every benchmark shares: timing statistics, isolated worker processes, and
writing results as JSON, a Markdown table and PNG plots under the output directory.

Benchmarks report medians (and p99 for latency): the machines are shared and noisy.
"""

import json
import logging
import os
import resource
import subprocess
import sys
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

log = logging.getLogger(__name__)


def time_calls(fn: Callable[[], object], warmup: int = 3, min_calls: int = 20,
               min_seconds: float = 1.0, max_calls: int = 2000) -> List[float]:
  """Calls fn until both min_calls and min_seconds are reached; seconds per call.

  The first `warmup` calls (tracing, caches) are not counted.
  """
  for _ in range(warmup):
    fn()
  samples: List[float] = []
  started = time.perf_counter()
  while len(samples) < max_calls and (len(samples) < min_calls
                                      or time.perf_counter() - started < min_seconds):
    begin = time.perf_counter()
    fn()
    samples.append(time.perf_counter() - begin)
  return samples


def latency_ms(samples_s: Sequence[float]) -> Dict[str, float]:
  """{p50_ms, p99_ms, calls} of per-call seconds."""
  values = np.asarray(samples_s, dtype=np.float64) * 1e3
  return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
          "calls": int(values.size)}


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_worker(module: str, args: Sequence[str], timeout: Optional[float] = None) -> Dict:
  """Runs `python -m module args...` in a fresh process and returns the JSON object
  it prints on its last stdout line.

  A fresh process per measurement keeps peak memory and warm caches of one
  configuration from leaking into the next.
  """
  command = [sys.executable, "-m", module, *args]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
  completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
  if completed.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}):\n"
                       f"{completed.stderr[-4000:]}")
  lines = [line for line in completed.stdout.splitlines() if line.strip()]
  if not lines:
    raise RuntimeError(f"{' '.join(command)} printed no result:\n{completed.stderr[-4000:]}")
  return json.loads(lines[-1])


def print_result(result: Mapping) -> None:
  """The worker side of run_worker: the result as the last stdout line."""
  sys.stdout.write(json.dumps(result) + "\n")
  sys.stdout.flush()


def write_json(path: str, data) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as handle:
    json.dump(data, handle, indent=2, sort_keys=True)
    handle.write("\n")
  return path


def _format(value) -> str:
  if isinstance(value, float):
    if value != value:  # NaN
      return "-"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
  if isinstance(value, int) and not isinstance(value, bool):
    return f"{value:,}"
  return "-" if value is None else str(value)


def markdown_table(rows: Iterable[Mapping], columns: Sequence[str],
                   headers: Optional[Sequence[str]] = None) -> str:
  """A GitHub Markdown table of `columns` of each row (missing cells print '-')."""
  headers = list(headers or columns)
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  for row in rows:
    lines.append("| " + " | ".join(_format(row.get(column)) for column in columns) + " |")
  return "\n".join(lines) + "\n"


def write_text(path: str, text: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as handle:
    handle.write(text)
  return path


Series = Dict[str, Tuple[Sequence[float], Sequence[float]]]


def line_plot(path: str, series: Series, xlabel: str, ylabel: str, title: str,
              logx: bool = False, logy: bool = False) -> str:
  """One PNG with a line per series: {label: (xs, ys)}."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  figure, axes = plt.subplots(figsize=(7, 4.5))
  for label, (xs, ys) in series.items():
    axes.plot(list(xs), list(ys), marker="o", label=label)
  if logx:
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted({x for xs, _ in series.values() for x in xs}))
    axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
  if logy:
    axes.set_yscale("log")
  axes.set_xlabel(xlabel)
  axes.set_ylabel(ylabel)
  axes.set_title(title)
  axes.grid(True, alpha=0.3)
  axes.legend()
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path


def usable_cpus() -> int:
  """CPUs this process may run on (its affinity, e.g. under taskset), not the machine's."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def machine_info() -> Dict:
  """What the numbers were measured on."""
  import platform
  info = {"cpus": usable_cpus(), "machine_cpus": os.cpu_count(), "python": platform.python_version(),
          "machine": platform.machine(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
  try:
    with open("/proc/cpuinfo") as handle:
      for line in handle:
        if line.startswith("model name"):
          info["cpu"] = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return info
