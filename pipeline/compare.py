"""`eta compare`: every model trained on the same Transform output, over several seeds.

Writes DIR/results.json ({"models": {name: {auc, gauc, logloss: {mean, std}, ...}}}),
DIR/results.md (a table) and DIR/results.png, and prints the table. It also
records the share of eval examples whose history is longer than k: where that
share is small, retrieval selects (almost) everything and ETA is full attention.
"""

import dataclasses
import json
import logging
import os
import time
from typing import Dict, List, Sequence

import numpy as np
import tensorflow_transform as tft
from tfx.orchestration import metadata

from eta_ctr.config import EtaConfig
from models.evaluation import evaluate
from models.trainer import train_model
from pipeline.local_runner import METADATA_FILE, run_local

log = logging.getLogger(__name__)


def transform_outputs(pipeline_root: str):
  """(transform graph dir, transformed examples dir) of the latest Transform run."""
  config = metadata.sqlite_metadata_connection_config(os.path.join(pipeline_root,
                                                                   METADATA_FILE))
  with metadata.Metadata(config) as handle:
    store = handle.store
    graph = max(store.get_artifacts_by_type("TransformGraph"), key=lambda a: a.id)
    examples = max((a for a in store.get_artifacts_by_type("Examples")
                    if "rows_read" not in a.custom_properties), key=lambda a: a.id)
  return graph.uri, examples.uri


def compare(config: EtaConfig, models: Sequence[str], seeds: int, output_dir: str,
            beam_pipeline_args=None) -> Dict:
  os.makedirs(output_dir, exist_ok=True)
  pipeline_root = os.path.join(output_dir, "pipeline")
  log.info("compare: ingest + Transform under %s (cached across runs)", pipeline_root)
  run_local(config, pipeline_root, serving_dir=os.path.join(output_dir, "unused"),
            pipeline_name="eta_compare", beam_pipeline_args=beam_pipeline_args,
            through_transform=True)
  graph_dir, examples_dir = transform_outputs(pipeline_root)
  tft_output = tft.TFTransformOutput(graph_dir)
  train_files = os.path.join(examples_dir, "Split-train", "*")
  eval_files = os.path.join(examples_dir, "Split-eval", "*")

  runs: Dict[str, List[Dict]] = {}
  for name in models:
    for seed in range(seeds):
      model_config = dataclasses.replace(config.model, name=name,
                                         seed=config.model.seed + seed)
      run_config = config.replace(model=model_config)
      log.info("compare: %s seed %d/%d", name, seed + 1, seeds)
      started = time.time()
      model, train_metrics = train_model(run_config, graph_dir, train_files, eval_files)
      result = evaluate(model, eval_files, tft_output, model_config.top_k)
      result.update(train_examples_per_second=train_metrics["train_examples_per_second"],
                    parameters=train_metrics["parameters"],
                    seconds=time.time() - started)
      log.info("compare: %s seed %d: auc %.4f gauc %.4f logloss %.4f", name, seed,
               result["auc"], result["gauc"], result["logloss"])
      runs.setdefault(name, []).append(result)
  results = summarize(runs, config, seeds)
  write_results(results, output_dir)
  return results


def summarize(runs: Dict[str, List[Dict]], config: EtaConfig, seeds: int) -> Dict:
  def stat(values):
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}

  models = {}
  for name, results in runs.items():
    models[name] = {metric: stat([r[metric] for r in results])
                    for metric in ("auc", "gauc", "logloss")}
    models[name].update(
        train_examples_per_second=float(np.median([r["train_examples_per_second"]
                                                   for r in results])),
        parameters=results[0]["parameters"], runs=results)
  first = next(iter(runs.values()))[0]
  return {"models": models, "seeds": seeds, "eval_examples": first["examples"],
          "history_longer_than_k": first["history_longer_than_k"],
          "config": {"model": dataclasses.asdict(config.model),
                     "trainer": dataclasses.asdict(config.trainer),
                     "source": dataclasses.asdict(config.source)}}


def results_table(results: Dict) -> str:
  model = results["config"]["model"]
  lines = [f"L={model['long_seq_len']} S={model['short_seq_len']} k={model['top_k']} "
           f"bits={model['hash_bits']}, {results['seeds']} seed(s), "
           f"{results['eval_examples']:,} eval examples, "
           f"{results['history_longer_than_k']:.1%} with history longer than k", "",
           "| model | AUC | GAUC | logloss | train ex/s | params |",
           "|---|---|---|---|---|---|"]
  ranked = sorted(results["models"].items(), key=lambda kv: -kv[1]["auc"]["mean"])
  for name, row in ranked:
    lines.append(
        f"| {name} | {row['auc']['mean']:.4f} ± {row['auc']['std']:.4f} "
        f"| {row['gauc']['mean']:.4f} ± {row['gauc']['std']:.4f} "
        f"| {row['logloss']['mean']:.4f} ± {row['logloss']['std']:.4f} "
        f"| {row['train_examples_per_second']:,.0f} | {row['parameters']:,} |")
  return "\n".join(lines)


def write_results(results: Dict, output_dir: str):
  with open(os.path.join(output_dir, "results.json"), "w") as handle:
    json.dump(results, handle, indent=2, sort_keys=True)
  table = results_table(results)
  with open(os.path.join(output_dir, "results.md"), "w") as handle:
    handle.write("# eta compare\n\n" + table + "\n")
  plot_results(results, os.path.join(output_dir, "results.png"))


def plot_results(results: Dict, path: str):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  ranked = sorted(results["models"].items(), key=lambda kv: kv[1]["auc"]["mean"])
  names = [name for name, _ in ranked]
  figure, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(names) + 1.5))
  for axis, metric in zip(axes, ("auc", "gauc")):
    means = [row[metric]["mean"] for _, row in ranked]
    stds = [row[metric]["std"] for _, row in ranked]
    colors = ["tab:red" if name == "eta" else "tab:gray" for name in names]
    axis.barh(names, means, xerr=stds, color=colors)
    low = min(means) - 3 * max(max(stds), 0.002)
    axis.set_xlim(max(0.0, low), max(means) + 3 * max(max(stds), 0.002))
    axis.set_title(f"eval {metric.upper()} (mean ± std over {results['seeds']} seeds)")
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
