"""What a pipeline run produced, read back from ML Metadata and the artifacts."""

import json
import os
from typing import Any, Dict, Optional

from tfx.orchestration import metadata

from pipeline.evaluation import blessing_rules
from pipeline.local_runner import METADATA_FILE
from pipeline.validation_gate import DRIFT_PROPERTY

# What the summary shows of the Trainer's metrics.json (models/trainer.py).
TRAINING_KEYS = ("best_step", "steps_trained", "train_steps_budget", "stopped_early",
                 "valid_logloss", "valid_auc")


def _latest(store, type_name, with_property=None):
  artifacts = [a for a in store.get_artifacts_by_type(type_name)
               if with_property is None or with_property in a.custom_properties]
  return max(artifacts, key=lambda a: a.id) if artifacts else None


def _training(model_run_uri: str) -> Optional[Dict[str, Any]]:
  """TRAINING_KEYS of the Trainer's metrics.json, or None when it has none."""
  import tensorflow as tf
  from models.trainer import METRICS_FILE
  path = os.path.join(model_run_uri, METRICS_FILE)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as handle:
    metrics = json.load(handle)
  return {key: metrics[key] for key in TRAINING_KEYS if key in metrics}


def run_summary(pipeline_root: str) -> Dict[str, Any]:
  """Metrics, blessing (its rules, and why not), pushed model path, ingest counts,
  drift (ValidationGate's lines: eval against train, non-blocking anomalies) and
  the Trainer's chosen step (`training`) of the latest run."""
  import tensorflow_model_analysis as tfma
  config = metadata.sqlite_metadata_connection_config(os.path.join(pipeline_root,
                                                                   METADATA_FILE))
  summary: Dict[str, Any] = {}
  with metadata.Metadata(config) as handle:
    store = handle.store
    examples = _latest(store, "Examples", with_property="rows_read")  # the ingest's
    if examples is not None:
      summary["ingest"] = {key: examples.custom_properties[key].int_value for key in
                           ("rows_read", "rows_valid", "rows_rejected", "examples_total")}
    gate = _latest(store, "Schema", with_property=DRIFT_PROPERTY)
    if gate is not None:
      summary["drift"] = json.loads(gate.custom_properties[DRIFT_PROPERTY].string_value)
    model_run = _latest(store, "ModelRun")
    training = _training(model_run.uri) if model_run is not None else None
    if training:
      summary["training"] = training
    evaluation = _latest(store, "ModelEvaluation")
    if evaluation is not None:
      result = tfma.load_eval_result(evaluation.uri)
      overall = result.slicing_metrics[0][1][""][""]
      summary["metrics"] = {name: value["doubleValue"] for name, value in overall.items()
                            if "doubleValue" in value and not name.endswith("_diff")}
      summary["change_vs_last_blessed"] = {
          name[:-len("_diff")]: value["doubleValue"] for name, value in overall.items()
          if "doubleValue" in value and name.endswith("_diff")}
      summary["blessing_rules"] = blessing_rules(result.config)
      validation = tfma.load_validation_result(evaluation.uri)
      summary["blessed"] = bool(validation.validation_ok)
      if not validation.validation_ok:
        summary["not_blessed_because"] = [
            str(failure.failures).strip() for failure in
            validation.metric_validations_per_slice]
    pushed = _latest(store, "PushedModel")
    if pushed is not None:
      was_pushed = pushed.custom_properties.get("pushed")
      summary["pushed"] = bool(was_pushed and was_pushed.int_value)
      destination = pushed.custom_properties.get("pushed_destination")
      summary["pushed_model"] = destination.string_value if destination else None
  return summary


def format_summary(summary: Dict[str, Any], serving_dir: Optional[str] = None) -> str:
  """The summary as the lines `eta run` prints: ingest, drift (one `drift: ...` line
  each), training (the chosen step), eval metrics, blessing (its rules) and push."""
  lines = []
  if "ingest" in summary:
    ingest = summary["ingest"]
    lines.append(f"ingest:   {ingest['rows_read']:,} rows read, {ingest['rows_valid']:,} valid, "
                 f"{ingest['rows_rejected']:,} rejected, {ingest['examples_total']:,} examples")
  for drift in summary.get("drift", []):
    lines.append(f"drift:    {drift}")
  if "training" in summary:
    training = summary["training"]
    line = (f"training: chose step {training['best_step']:,} of "
            f"{training.get('steps_trained', training['best_step']):,} trained (budget "
            f"{training.get('train_steps_budget', training['best_step']):,}")
    line += ", stopped early" if training.get("stopped_early") else ""
    if "valid_logloss" in training:
      line += f"), valid logloss {training['valid_logloss']:.5f}"
      line += f", valid auc {training['valid_auc']:.5f}" if "valid_auc" in training else ""
    else:
      line += "), no valid split"
    lines.append(line)
  if summary.get("metrics"):
    lines.append("eval metrics:")
  for name, value in sorted(summary.get("metrics", {}).items()):
    lines.append(f"  {name:<18} {value:.5f}" if isinstance(value, float) else
                 f"  {name:<18} {value}")
  if summary.get("change_vs_last_blessed"):
    change = summary["change_vs_last_blessed"]
    lines.append("vs last blessed: " + ", ".join(f"{k} {v:+.5f}" for k, v in sorted(change.items())))
  if "blessed" in summary:
    rules = summary.get("blessing_rules")
    lines.append(f"blessed:  {'yes' if summary['blessed'] else 'NO'}"
                 + (f"   (needs {'; '.join(rules)})" if rules else ""))
    for reason in summary.get("not_blessed_because", []):
      lines.append(f"  because {reason}")
  if summary.get("pushed"):
    lines.append(f"pushed:   {summary['pushed_model']}")
    lines.append(f"serve it: eta serve --model-dir {serving_dir or os.path.dirname(summary['pushed_model'])}")
  elif "pushed" in summary:
    lines.append("pushed:   no (the model was not blessed)")
  return "\n".join(lines)


def write_summary(summary: Dict[str, Any], path: str):
  with open(path, "w") as handle:
    json.dump(summary, handle, indent=2, sort_keys=True)
