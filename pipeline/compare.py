"""`eta compare`: every model trained on the same Transform output, over several seeds.

Selection is fair: every model gets the same step budget (TrainerConfig) and
chooses its stopping step on the valid split (early stopping, best weights kept),
never on eval; eval is scored once per run, after training.

Besides the named models, `Variant`s compare one model under changed settings
(e.g. ETA hashing the item alone), each under its own label, on the same
examples and seeds; paired differences are taken against `reference` (eta by
default), so a one-at-a-time diagnosis reads as "variant - din, per seed".

Writes DIR/runs_so_far.json after every run (each finished run's results), then
DIR/results.json, DIR/results.md (a table) and DIR/results.png, and prints
the table. results.json:

  {"models": {label: {<metric>: {mean, std, n}, ...,    over seeds; std: sample (n - 1)
                      "best_step": {mean, std, n},       the chosen steps
                      "vs_<reference>": {<metric>: {mean, std, n}},  paired by seed
                      "changes": {field: value},         a variant's settings
                      "runs": [per-seed results], ...}},
   "reference": "eta", "seeds": N, "eval_examples": ..., "history_longer_than_k": ...,
   "config": {...}}

with <metric> in METRICS (and the retrieval shares of models/evaluation.py for
retrieval models). `vs_<reference>` is there for every model but the reference
when the reference was compared: the per-seed difference (same seed index, so the same initialisation
seed offset and data order) says whether a gap is larger than the seed noise.
It also records the share of eval examples whose history is longer than k: where
that share is small, retrieval selects (almost) everything and ETA is full attention.
"""

import dataclasses
import json
import logging
import os
import time
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import tensorflow_transform as tft
from tfx.orchestration import metadata

from components import events
from eta_ctr.config import EtaConfig, ModelConfig, TrainerConfig
from models.evaluation import evaluate
from models.trainer import train_model
from pipeline.local_runner import METADATA_FILE, run_local

log = logging.getLogger(__name__)

# Per-run eval metrics summarised over seeds (models/evaluation.py evaluate()).
METRICS = ("auc", "gauc", "logloss", "logloss_over_base_rate", "calibration")
# The model every other is differenced against, seed by seed (default).
REFERENCE = "eta"
# Every finished run so far, rewritten after each ({label: [per-seed results]}).
PARTIAL_RUNS_FILE = "runs_so_far.json"
# Retrieval-model metrics (models/evaluation.py), summarised when present.
RETRIEVAL_METRICS = ("retrieved_same_category", "history_same_category")


@dataclasses.dataclass(frozen=True)
class Variant:
  """A model compared under its own label with changed settings.

  Attributes:
    label: its name in the results (not one of the model names).
    model: the architecture, one of MODEL_NAMES.
    changes: {field: value} of ModelConfig or TrainerConfig fields.

  Raises:
    ValueError: a field is in neither section (or in both), or a value is invalid.
  """
  label: str
  model: str
  changes: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    trainer_fields = {f.name for f in dataclasses.fields(TrainerConfig)}
    unknown = set(self.changes) - model_fields - trainer_fields - {"name"}
    if unknown or "name" in self.changes:
      raise ValueError(f"variant {self.label!r}: unknown settings {sorted(unknown or {'name'})};"
                       f" ModelConfig or TrainerConfig fields are expected")
    self.apply(EtaConfig())  # validates the values

  def apply(self, config: EtaConfig) -> EtaConfig:
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    model = {k: v for k, v in self.changes.items() if k in model_fields}
    trainer = {k: v for k, v in self.changes.items() if k not in model_fields}
    return config.replace(
        model=dataclasses.replace(config.model, name=self.model, **model),
        trainer=dataclasses.replace(config.trainer, **trainer))


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


def _split_files(examples_dir: str, split: str) -> str:
  return os.path.join(examples_dir, f"Split-{split}", "*")


def compare(config: EtaConfig, models: Sequence[str], seeds: int, output_dir: str,
            beam_pipeline_args=None, variants: Sequence[Variant] = (),
            reference: str = REFERENCE) -> Dict:
  """Trains each of `models` and `variants` `seeds` times (seed offsets 0..seeds-1 on
  config.model.seed), each stopping on the valid split, and scores each on eval;
  returns summarize()'s dict after writing it (write_results).

  Raises:
    ValueError: two entries share a label.
  """
  entries = [Variant(name, name) if isinstance(name, str) else name for name in models]
  entries += list(variants)
  labels = [entry.label for entry in entries]
  if len(set(labels)) != len(labels):
    raise ValueError(f"duplicate labels in {labels}")
  os.makedirs(output_dir, exist_ok=True)
  pipeline_root = os.path.join(output_dir, "pipeline")
  log.info("compare: ingest + Transform under %s (cached across runs)", pipeline_root)
  run_local(config, pipeline_root, serving_dir=os.path.join(output_dir, "unused"),
            pipeline_name="eta_compare", beam_pipeline_args=beam_pipeline_args,
            through_transform=True)
  graph_dir, examples_dir = transform_outputs(pipeline_root)
  tft_output = tft.TFTransformOutput(graph_dir)
  train_files = _split_files(examples_dir, events.SPLIT_TRAIN)
  valid_files = (_split_files(examples_dir, events.SPLIT_VALID)
                 if events.SPLIT_VALID in config.ingest.split_names else None)
  eval_files = _split_files(examples_dir, events.SPLIT_EVAL)

  runs: Dict[str, List[Dict]] = {}
  for entry in entries:
    name = entry.label
    for seed in range(seeds):
      run_config = entry.apply(config)
      model_config = dataclasses.replace(run_config.model, seed=config.model.seed + seed)
      run_config = run_config.replace(model=model_config)
      log.info("compare: %s seed %d/%d", name, seed + 1, seeds)
      started = time.time()
      model, train_metrics = train_model(run_config, graph_dir, train_files, valid_files)
      result = evaluate(model, eval_files, tft_output, model_config.top_k)
      result.update(seed=model_config.seed,
                    **{key: train_metrics[key] for key in (
                        "best_step", "steps_trained", "stopped_early",
                        "train_examples_per_second", "parameters",
                        "validation_history")},
                    valid_logloss=train_metrics.get("valid_logloss"),
                    seconds=time.time() - started)
      log.info("compare: %s seed %d: step %d of %d, auc %.4f gauc %.4f logloss %.4f", name,
               seed, result["best_step"], result["steps_trained"], result["auc"],
               result["gauc"], result["logloss"])
      runs.setdefault(name, []).append(result)
      # After every run, so that a long comparison stopped half-way keeps what it measured.
      with open(os.path.join(output_dir, PARTIAL_RUNS_FILE), "w") as handle:
        json.dump(runs, handle, indent=1, sort_keys=True)
  results = summarize(runs, config, seeds, reference,
                      {entry.label: dict(entry.changes) for entry in entries if entry.changes})
  write_results(results, output_dir)
  return results


def stat(values: Sequence[float]) -> Dict[str, float]:
  """{mean, std, n}: std is the sample standard deviation (n - 1), 0 for one value."""
  values = np.asarray(values, dtype=np.float64)
  return {"mean": float(np.mean(values)),
          "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
          "n": int(len(values))}


def paired_differences(results: List[Dict], reference: List[Dict],
                       metrics: Sequence[str] = METRICS) -> Dict[str, Dict[str, float]]:
  """{metric: stat(result[i][metric] - reference[i][metric])}: the runs paired by seed
  index (positive = above the reference).

  Raises:
    ValueError: the two lists differ in length (the seeds cannot be paired).
  """
  if len(results) != len(reference):
    raise ValueError(f"cannot pair {len(results)} runs with {len(reference)} of the "
                     "reference: compare both over the same seeds")
  return {metric: stat([r[metric] - ref[metric] for r, ref in zip(results, reference)])
          for metric in metrics}


def summarize(runs: Dict[str, List[Dict]], config: EtaConfig, seeds: int,
              reference_name: str = REFERENCE,
              changes: Mapping[str, Mapping[str, Any]] = None) -> Dict:
  """The results dict (see the module doc) of {label: [per-seed results]}; `changes`:
  {label: {field: value}} of the variants."""
  models = {}
  reference = runs.get(reference_name)
  for name, results in runs.items():
    metrics = METRICS + tuple(m for m in RETRIEVAL_METRICS if m in results[0])
    models[name] = {metric: stat([r[metric] for r in results]) for metric in metrics}
    models[name]["best_step"] = stat([r["best_step"] for r in results])
    if reference is not None and name != reference_name:
      models[name]["vs_" + reference_name] = paired_differences(results, reference)
    if changes and name in changes:
      models[name]["changes"] = dict(changes[name])
    models[name].update(
        train_examples_per_second=float(np.median([r["train_examples_per_second"]
                                                   for r in results])),
        parameters=results[0]["parameters"], runs=results)
  first = next(iter(runs.values()))[0]
  return {"models": models, "reference": reference_name if reference is not None else None,
          "seeds": seeds, "eval_examples": first["examples"],
          "history_longer_than_k": first["history_longer_than_k"],
          "config": {section: dataclasses.asdict(getattr(config, section))
                     for section in ("source", "ingest", "model", "trainer")}}


def _pm(value: Dict[str, float], digits: int = 4, sign: str = "") -> str:
  return f"{value['mean']:{sign}.{digits}f} ± {value['std']:.{digits}f}"


def _selection_line(config: Dict) -> str:
  trainer, ingest = config["trainer"], config.get("ingest", {})
  if not ingest.get("valid_fraction", 0):
    return (f"no valid split: every model trained the whole budget of "
            f"{trainer['train_steps']:,} steps")
  return (f"stopping step chosen on the valid split (each user's last "
          f"{ingest['valid_fraction']:.0%} of train-period events), never on eval: budget "
          f"{trainer['train_steps']:,} steps for every model, validation every "
          f"{trainer['validate_every_steps']:,}, patience {trainer['patience']}")


def results_table(results: Dict) -> str:
  """results.md's table: mean ± sample std over seeds, paired differences vs eta."""
  model = results["config"]["model"]
  reference = results.get("reference")
  delta = f"Δ vs {reference} (paired)" if reference else None
  lines = [f"L={model['long_seq_len']} S={model['short_seq_len']} k={model['top_k']} "
           f"bits={model['hash_bits']}, {results['seeds']} seed(s), "
           f"{results['eval_examples']:,} eval examples, "
           f"{results['history_longer_than_k']:.1%} with history longer than k", "",
           _selection_line(results["config"]) + ".",
           "Mean ± sample std over seeds"
           + (f"; Δ = model − {reference} per seed (same seed index), mean ± std."
              if reference else "."), ""]
  columns = ["model", "AUC"] + ([f"AUC {delta}"] if delta else []) + ["GAUC"] + (
      [f"GAUC {delta}"] if delta else []) + [
          "logloss", "logloss − base rate", "calibration", "chosen step", "train ex/s",
          "params"]
  shares = any("retrieved_same_category" in row for row in results["models"].values())
  if shares:
    columns.append("same category: retrieved / history")
  lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  ranked = sorted(results["models"].items(), key=lambda kv: -kv[1]["auc"]["mean"])
  for name, row in ranked:
    paired = row.get("vs_" + reference) if reference else None
    cells = [name, _pm(row["auc"])]
    if delta:
      cells.append(_pm(paired["auc"], sign="+") if paired else "—")
    cells.append(_pm(row["gauc"]))
    if delta:
      cells.append(_pm(paired["gauc"], sign="+") if paired else "—")
    cells += [_pm(row["logloss"]), _pm(row["logloss_over_base_rate"], sign="+"),
              _pm(row["calibration"], digits=3), _pm(row["best_step"], digits=0),
              f"{row['train_examples_per_second']:,.0f}", f"{row['parameters']:,}"]
    if shares:
      cells.append(f"{row['retrieved_same_category']['mean']:.1%} / "
                   f"{row['history_same_category']['mean']:.1%}"
                   if "retrieved_same_category" in row else "—")
    lines.append("| " + " | ".join(cells) + " |")
  variants = [(name, row["changes"]) for name, row in ranked if row.get("changes")]
  if variants:
    lines += ["", "Variants (settings changed from the config above):"]
    lines += [f"- {name}: " + ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
              for name, changes in variants]
  if shares:
    lines += ["", "same category: share of the retrieved behaviours in the candidate's "
                  "category / the same share over the whole history, on the eval examples "
                  "whose history is longer than k."]
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
  reference = results.get("reference")
  colors = ["tab:red" if name == reference else "tab:gray" for name in names]
  panels = 3 if reference else 2
  figure, axes = plt.subplots(1, panels, figsize=(5 * panels, 0.5 * len(names) + 1.5))
  for axis, metric in zip(axes, ("auc", "gauc")):
    means = [row[metric]["mean"] for _, row in ranked]
    stds = [row[metric]["std"] for _, row in ranked]
    axis.barh(names, means, xerr=stds, color=colors)
    low = min(means) - 3 * max(max(stds), 0.002)
    axis.set_xlim(max(0.0, low), max(means) + 3 * max(max(stds), 0.002))
    axis.set_title(f"eval {metric.upper()} (mean ± std over {results['seeds']} seeds)")
  if reference:
    axis = axes[2]
    paired = [row.get("vs_" + reference, {}).get("auc", {"mean": 0.0, "std": 0.0})
              for _, row in ranked]
    axis.barh(names, [p["mean"] for p in paired], xerr=[p["std"] for p in paired],
              color=colors)
    axis.axvline(0.0, color="black", linewidth=0.8)
    reach = max([abs(p["mean"]) + p["std"] for p in paired] + [0.001])
    axis.set_xlim(-1.2 * reach, 1.2 * reach)  # symmetric: which side of eta is plain
    axis.set_title(f"AUC − {reference}, paired per seed (mean ± std)")
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
