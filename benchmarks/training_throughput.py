"""Training examples/s and peak memory against the history length L, per model.

`eta bench train --output DIR` trains each model (default eta and din_long) at
each L in a fresh worker process, the way models/trainer.py does (Adam,
model.fit, autograph speed-up installed), on synthetic transformed batches: a
few distinct batches cycled from an in-memory tf.data pipeline, so reading input
is not what is measured. Every history is full, L real behaviours, no padding
(the worst case per L, and what dense [B, L] tensors cost anyway); items follow
a Zipf-like (log-uniform) popularity over a --vocab catalogue, so embedding
lookups and their sparse gradients touch a realistic number of rows, and items
repeat within a batch as in real logs (ETA hashes each distinct item once per
batch, so its speed depends on that).

Per (model, L): examples/s = batch / median step time over the timed steps
(each step's time runs from one batch end to the next, input included); the
worker's RSS just before fit; its peak RSS (ru_maxrss) during fit, reset to the
current RSS just before fit so that set-up transients do not count; training
memory = peak - before (it includes tracing the train function, a constant).
Writes DIR/train.json, DIR/train.md (speed-up over din_long per L, memory
growth against L) and DIR/train.png, DIR/train_memory.png.
"""

import argparse
import concurrent.futures
import logging
import math
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import report

log = logging.getLogger(__name__)

WORKER_MODULE = "benchmarks.training_throughput"
CATEGORY_VOCAB = 1000     # category catalogue of the synthetic data
POSITIVE_RATE = 0.2       # label rate; irrelevant to speed, kept CTR-like
WORKER_TIMEOUT_S = 3600   # din_long at L = 4096 on 2 shared cores is slow
TARGET_LENGTH, TARGET_SPEEDUP = 1024, 3.0
# Smoke workers run two at a time: tracing is single-threaded Python, and a
# smoke run only checks that the suite works.
SMOKE = {"history_lengths": "32,64", "batch_size": 16, "steps": 3, "warmup_steps": 1,
         "vocab": 1000, "top_k": 8, "distinct_batches": 2, "jobs": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--history-lengths", default="256,1024,4096",
                      help="comma-separated history lengths L (default 256,1024,4096)")
  parser.add_argument("--models", default="eta,din_long",
                      help="comma-separated models (default eta,din_long)")
  parser.add_argument("--batch-size", type=int, default=256)
  parser.add_argument("--steps", type=int, default=50, help="timed training steps")
  parser.add_argument("--warmup-steps", type=int, default=5,
                      help="untimed steps first (the first one traces the train function)")
  parser.add_argument("--vocab", type=int, default=100_000,
                      help="item catalogue size (embedding table rows)")
  parser.add_argument("--top-k", type=int, default=48, help="k of ETA (and SIM), capped at L")
  parser.add_argument("--distinct-batches", type=int, default=4,
                      help="distinct synthetic batches cycled through")
  parser.add_argument("--jobs", type=int, default=1,
                      help="workers at a time; keep 1 for numbers (they would share the CPUs)")


def _ints(text: str) -> List[int]:
  return [int(part) for part in str(text).split(",") if part.strip()]


def _names(text: str) -> List[str]:
  return [part.strip() for part in str(text).split(",") if part.strip()]


def _settings(args) -> Dict:
  """The suite's effective settings; --smoke overrides the sizes."""
  keys = ("history_lengths", "models", "batch_size", "steps", "warmup_steps", "vocab",
          "top_k", "distinct_batches", "jobs")
  settings = {key: getattr(args, key) for key in keys}
  if getattr(args, "smoke", False):
    settings.update(SMOKE)
  settings["history_lengths"] = _ints(settings["history_lengths"])
  settings["models"] = _names(settings["models"])
  if settings["warmup_steps"] < 1 or settings["steps"] < 1:
    raise ValueError("--warmup-steps and --steps must be >= 1 (the first step traces)")
  return settings


# -- growth of a quantity against L (pure helpers) --------------------------------


def loglog_slopes(xs: Sequence[float], ys: Sequence[float]) -> List[Optional[float]]:
  """d log y / d log x between consecutive points (1 = linear, 2 = quadratic).

  None where a y is not positive.
  """
  slopes = []
  for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
    if y0 is None or y1 is None or y0 <= 0 or y1 <= 0 or x0 <= 0 or x1 <= 0 or x0 == x1:
      slopes.append(None)
    else:
      slopes.append(math.log(y1 / y0) / math.log(x1 / x0))
  return slopes


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> Dict[str, float]:
  """Least squares y = intercept + slope * x."""
  slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
  return {"intercept": float(intercept), "slope": float(slope)}


def offset_power_exponent(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
  """The p of the best least-squares fit y = a + b * x**p (p in [0.1, 3]).

  The constant a (libraries, weights, traced graphs) hides the growth in a plain
  log-log slope; fitting it out leaves the exponent of the L-dependent part.
  Needs three or more distinct x.
  """
  xs, ys = np.asarray(xs, float), np.asarray(ys, float)
  if len(set(xs.tolist())) < 3:
    return None
  best, best_p = math.inf, None
  for p in np.arange(0.1, 3.0001, 0.01):
    design = np.stack([np.ones_like(xs), xs ** p], 1)
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    residual = float(np.sum((design @ coef - ys) ** 2))
    if residual < best:
      best, best_p = residual, float(p)
  if best_p is None or not 0.1 < best_p < 3.0:
    return None  # at a bound of the search: the points do not determine a growth law
  return round(best_p, 2)


# -- the suite (parent process) --------------------------------------------------


def _worker_args(settings: Dict, model: str, length: int) -> List[str]:
  return ["--model", model, "--history-length", str(length),
          "--batch-size", str(settings["batch_size"]), "--steps", str(settings["steps"]),
          "--warmup-steps", str(settings["warmup_steps"]), "--vocab", str(settings["vocab"]),
          "--top-k", str(settings["top_k"]),
          "--distinct-batches", str(settings["distinct_batches"])]


def _measure(settings: Dict, model: str, length: int) -> Dict:
  log.info("bench train: %s L=%d, batch %d, %d+%d steps", model, length,
           settings["batch_size"], settings["warmup_steps"], settings["steps"])
  started = time.time()
  try:
    row = report.run_worker(WORKER_MODULE, _worker_args(settings, model, length),
                            timeout=WORKER_TIMEOUT_S)
  except Exception as error:  # one failed configuration (e.g. out of memory) keeps the rest
    log.error("bench train: %s L=%d failed: %s", model, length, str(error)[-2000:])
    return {"model": model, "history_length": length, "batch_size": settings["batch_size"],
            "error": str(error)[-500:]}
  log.info("bench train: %s L=%d: %.0f examples/s (step p50 %.1f ms), training memory "
           "%.0f MB, peak RSS %.0f MB [%.0fs]", model, length, row["examples_per_s"],
           row["step_ms_p50"], row["training_memory_mb"], row["peak_rss_mb"],
           time.time() - started)
  return row


def run(args) -> Dict:
  """Runs every (model, L) in its own worker; writes train.{json,md,png}."""
  settings = _settings(args)
  output = getattr(args, "output", "out/bench")
  smoke = getattr(args, "smoke", False)
  configs = [(model, length) for model in settings["models"]
             for length in settings["history_lengths"]]
  with concurrent.futures.ThreadPoolExecutor(max(1, settings["jobs"])) as pool:
    rows = list(pool.map(lambda config: _measure(settings, *config), configs))
  summary = summarize(rows, settings["models"], settings["history_lengths"])
  result = {"suite": "train", "smoke": smoke, "settings": settings,
            "machine": report.machine_info(), "rows": rows, "summary": summary}
  report.write_json(os.path.join(output, "train.json"), result)
  markdown = _markdown(rows, summary, settings, smoke)
  report.write_text(os.path.join(output, "train.md"), markdown)
  plots = _plots(rows, settings["models"], output)
  return {"markdown": markdown, "rows": rows, "summary": summary, "files": plots}


def _ok(rows, model):
  return sorted((row for row in rows if row["model"] == model and "error" not in row),
                key=lambda row: row["history_length"])


def summarize(rows: Sequence[Dict], models: Sequence[str], lengths: Sequence[int]) -> Dict:
  """Speed-ups over din_long per L and each model's memory growth against L."""
  by_key = {(row["model"], row["history_length"]): row for row in rows if "error" not in row}
  speedups = []
  for length in lengths:
    reference = by_key.get(("din_long", length))
    entry = {"history_length": length}
    for model in models:
      row = by_key.get((model, length))
      if model != "din_long" and row and reference:
        entry[f"{model}/din_long"] = row["examples_per_s"] / reference["examples_per_s"]
        # Per CPU second: steadier than wall time when other jobs share the CPUs.
        entry[f"{model}/din_long per CPU-s"] = (row["examples_per_cpu_s"]
                                                / reference["examples_per_cpu_s"])
    speedups.append(entry)
  growth = {}
  for model in models:
    ok = _ok(rows, model)
    xs = [row["history_length"] for row in ok]
    memory = [row["training_memory_mb"] for row in ok]
    steps = [row["step_ms_p50"] for row in ok]
    growth[model] = {
        "history_lengths": xs,
        "memory_loglog_slopes": loglog_slopes(xs, memory),
        "memory_exponent": offset_power_exponent(xs, memory),
        "memory_mb_per_1000": (1000 * linear_fit(xs, memory)["slope"]) if len(xs) > 1 else None,
        "step_time_loglog_slopes": loglog_slopes(xs, steps),
    }
  target = next((entry.get("eta/din_long") for entry in speedups
                 if entry["history_length"] == TARGET_LENGTH), None)
  return {"speedups": speedups, "growth": growth,
          "target": {"history_length": TARGET_LENGTH, "required": TARGET_SPEEDUP,
                     "eta/din_long": target,
                     "met": None if target is None else target >= TARGET_SPEEDUP}}


def _slopes_text(slopes) -> str:
  return ", ".join("-" if s is None else f"{s:.2f}" for s in slopes) or "-"


def _markdown(rows, summary, settings, smoke) -> str:
  columns = ["model", "history_length", "examples_per_s", "step_ms_p50", "step_ms_p90",
             "examples_per_cpu_s", "first_step_s", "rss_before_training_mb", "peak_rss_mb",
             "training_memory_mb", "parameters"]
  headers = ["model", "L", "examples/s", "step p50 ms", "step p90 ms", "examples/CPU-s",
             "first step s", "RSS before MB", "peak RSS MB", "training MB", "parameters"]
  ok = [row for row in rows if "error" not in row]
  text = ["## Training throughput\n",
          "SMOKE run: tiny sizes, not a measurement.\n" if smoke else "",
          f"Batch {settings['batch_size']}, {settings['warmup_steps']} warm-up + "
          f"{settings['steps']} timed steps per (model, L), each in a fresh process"
          f"{'' if settings['jobs'] <= 1 else ' (%d at a time)' % settings['jobs']}; Adam, "
          f"model.fit as the Trainer runs it; {settings['vocab']:,} items, top-k "
          f"{settings['top_k']} (capped at L). Histories are full (L real behaviours). "
          "examples/s = batch / median step time; peak RSS is over fit alone (reset "
          "before it); training MB = peak RSS - RSS before fit.\n",
          report.markdown_table(ok, columns, headers)]
  failed = [row for row in rows if "error" in row]
  for row in failed:
    text.append(f"\n**{row['model']} L={row['history_length']} failed:** "
                f"`{row['error'].strip().splitlines()[-1] if row['error'].strip() else '?'}`\n")
  ratio_columns = sorted({key for entry in summary["speedups"] for key in entry}
                         - {"history_length"})
  if ratio_columns:
    text.append("\nSpeed-up in training examples/s over din_long (full attention over L):\n\n")
    text.append(report.markdown_table(summary["speedups"], ["history_length"] + ratio_columns,
                                      ["L"] + ratio_columns))
  target = summary["target"]
  if target["eta/din_long"] is not None:
    verdict = "met" if target["met"] else "NOT met"
    text.append(f"\nTarget at L = {target['history_length']}: ETA >= "
                f"{target['required']:.0f}x din_long: {target['eta/din_long']:.2f}x, {verdict}.\n")
  text.append("\nGrowth against L (log-log slopes between consecutive L: 1 = linear, "
              "2 = quadratic; exponent p of the fit memory = a + b L^p, which removes the "
              "constant part):\n\n")
  growth_rows = [{"model": model, "memory_slopes": _slopes_text(g["memory_loglog_slopes"]),
                  "memory_exponent": g["memory_exponent"],
                  "mb_per_1000": g["memory_mb_per_1000"],
                  "step_slopes": _slopes_text(g["step_time_loglog_slopes"])}
                 for model, g in summary["growth"].items()]
  text.append(report.markdown_table(
      growth_rows, ["model", "memory_slopes", "memory_exponent", "mb_per_1000", "step_slopes"],
      ["model", "training MB log-log slopes", "memory exponent p", "MB per 1000 behaviours",
       "step time log-log slopes"]))
  text.append("\n![examples/s against L](train.png) ![memory against L](train_memory.png)\n")
  return "".join(text)


def _plots(rows, models, output) -> List[str]:
  throughput, memory = {}, {}
  for model in models:
    ok = _ok(rows, model)
    xs = [row["history_length"] for row in ok]
    if xs:
      throughput[model] = (xs, [row["examples_per_s"] for row in ok])
      memory[model] = (xs, [row["training_memory_mb"] for row in ok])
  if not throughput:
    return []
  return [
      report.line_plot(os.path.join(output, "train.png"), throughput, "history length L",
                       "training examples/s", "Training throughput against L", logx=True,
                       logy=True),
      report.line_plot(os.path.join(output, "train_memory.png"), memory, "history length L",
                       "training memory MB (peak - before fit)", "Training memory against L",
                       logx=True)]


# -- the worker (one model and L in a fresh process) --------------------------------


def current_rss_mb() -> float:
  """Resident memory of this process now, MiB."""
  with open("/proc/self/statm") as handle:
    pages = int(handle.read().split()[1])
  return pages * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)


def reset_peak_rss() -> bool:
  """Resets this process's peak RSS (ru_maxrss, VmHWM) to its current RSS (Linux >= 4.0).

  So that the peak read after fit is the peak of training alone, not of the
  set-up before it (synthetic arrays freed once they are tensors).
  """
  try:
    with open("/proc/self/clear_refs", "w") as handle:
      handle.write("5")
    return True
  except OSError:
    return False


def synthetic_batches(length: int, short_length: int, batch_size: int, count: int,
                      vocab: int, time_gap_buckets: int, seed: int = 0) -> Dict[str, np.ndarray]:
  """`count` transformed batches stacked: {feature: [count, B] or [count, B, T]} int64.

  Histories are full (length real behaviours, none padded); the short sequence
  is the first short_length of them, as Transform makes it. Item indices run
  1..vocab (0 is padding) with density ~ 1/index, a Zipf-like popularity.
  """
  from models import features  # lazy: imports TensorFlow
  rng = np.random.default_rng(seed)

  def items(shape):
    return np.minimum(np.exp(rng.uniform(0, math.log(vocab + 1), size=shape)).astype(np.int64),
                      vocab)

  shape = (count, batch_size, length)
  long_items = items(shape)
  long_categories = long_items % CATEGORY_VOCAB + 1
  # Most recent first: time-gap buckets grow along the sequence.
  gaps = np.sort(rng.integers(1, time_gap_buckets, size=shape), axis=-1)
  candidate = items((count, batch_size))
  lengths = np.full((count, batch_size), length, np.int64)
  data = {
      features.ITEM: candidate, features.CATEGORY: candidate % CATEGORY_VOCAB + 1,
      features.LONG_ITEMS: long_items, features.LONG_CATEGORIES: long_categories,
      features.LONG_TIME_GAPS: gaps, features.LONG_LENGTH: lengths,
      features.SHORT_ITEMS: long_items[..., :short_length],
      features.SHORT_CATEGORIES: long_categories[..., :short_length],
      features.SHORT_TIME_GAPS: gaps[..., :short_length],
      features.SHORT_LENGTH: np.minimum(lengths, short_length),
      features.LABEL: (rng.random((count, batch_size)) < POSITIVE_RATE).astype(np.int64),
  }
  return {name: np.ascontiguousarray(value, np.int64) for name, value in data.items()}


def _step_timer(keras):
  class StepTimer(keras.callbacks.Callback):
    """Wall and CPU clock at the start of fit and at every batch end."""

    def on_train_begin(self, logs=None):
      self.wall, self.cpu = [time.perf_counter()], [time.process_time()]

    def on_train_batch_end(self, batch, logs=None):
      self.wall.append(time.perf_counter())
      self.cpu.append(time.process_time())

  return StepTimer()


def measure(model_name: str, length: int, batch_size: int, steps: int, warmup_steps: int,
            vocab: int, top_k: int, distinct_batches: int, seed: int = 0) -> Dict:
  """Trains model_name for warmup + steps batches; the timing and memory row."""
  import tensorflow as tf
  import tf_keras as keras
  from eta_ctr.config import ModelConfig, TrainerConfig
  from models import autograph_speedup
  from models.architectures.registry import build_model

  # As the Trainer process has it (models.trainer.train_model installs it too).
  autograph_installed = autograph_speedup.install()
  config = ModelConfig(name=model_name, top_k=top_k).replace_clamped(long_seq_len=length)
  trainer = TrainerConfig(batch_size=batch_size)
  tf.keras.utils.set_random_seed(seed)
  arrays = synthetic_batches(length, config.short_seq_len, batch_size, distinct_batches, vocab,
                             config.time_gap_buckets, seed)
  # Each element is one whole batch: no per-example work, only a cycle in memory.
  dataset = tf.data.Dataset.from_tensor_slices(arrays).repeat().prefetch(2)
  del arrays
  # Table sizes as vocabulary_sizes() gives them: vocabulary + 1 OOV + padding.
  oov = config.num_oov_buckets
  model = build_model(config, vocab + oov + 1, CATEGORY_VOCAB + oov + 1)
  model.compile(optimizer=keras.optimizers.Adam(trainer.learning_rate))
  setup_peak = report.peak_rss_mb()
  rss_before = current_rss_mb()
  peak_reset = reset_peak_rss()
  timer = _step_timer(keras)
  model.fit(dataset, epochs=1, steps_per_epoch=warmup_steps + steps, callbacks=[timer],
            verbose=0)
  peak = report.peak_rss_mb()  # of training alone where peak_reset
  wall, cpu = np.diff(timer.wall), np.diff(timer.cpu)
  timed, timed_cpu = wall[warmup_steps:], cpu[warmup_steps:]
  median = float(np.median(timed))
  return {
      "model": model_name, "history_length": length, "batch_size": batch_size,
      "top_k": config.top_k, "short_seq_len": config.short_seq_len, "vocab": vocab,
      "steps": int(timed.size), "warmup_steps": warmup_steps,
      "examples_per_s": batch_size / median,
      "examples_per_s_mean": batch_size * timed.size / float(np.sum(timed)),
      "examples_per_cpu_s": batch_size * timed.size / max(float(np.sum(timed_cpu)), 1e-9),
      "step_ms_p50": 1e3 * median, "step_ms_p90": 1e3 * float(np.percentile(timed, 90)),
      "first_step_s": float(wall[0]), "first_step_cpu_s": float(cpu[0]),
      "rss_before_training_mb": rss_before, "peak_rss_mb": peak,
      "training_memory_mb": peak - rss_before, "setup_peak_rss_mb": setup_peak,
      "peak_reset": peak_reset,
      "parameters": int(model.count_params()),
      "autograph_speedup": bool(autograph_installed),
      "tf_version": tf.__version__, "cpus": os.cpu_count(),
  }


def worker_main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(description="one (model, L) of `eta bench train`")
  parser.add_argument("--model", required=True)
  parser.add_argument("--history-length", type=int, required=True)
  parser.add_argument("--seed", type=int, default=0)
  add_arguments(parser)
  args = parser.parse_args(argv)
  report.print_result(measure(args.model, args.history_length, args.batch_size, args.steps,
                              args.warmup_steps, args.vocab, args.top_k,
                              args.distinct_batches, args.seed))
  return 0


if __name__ == "__main__":
  from eta_ctr import runtime  # pylint: disable=g-import-not-at-top
  runtime.prepare()  # TensorFlow is not imported yet here
  sys.exit(worker_main(sys.argv[1:]))
