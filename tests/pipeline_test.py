"""The whole TFX pipeline on a small generated log: every component, export, blessing, cache."""

import glob
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tfx.orchestration import metadata

from components import example_io
from eta_ctr import cli, flags
from eta_ctr.config import EtaConfig
from models import features
from models.export import export_serving_model
from models.trainer import train_model
from pipeline.local_runner import METADATA_FILE
from pipeline.pipeline import COMPONENT_IDS

pytestmark = pytest.mark.e2e

AUC_FLOOR = ["--auc-floor", "0.5"]


@pytest.fixture
def run(pipeline_run):
  """The session's pipeline run (tests/conftest.py)."""
  return pipeline_run


def _store(run):
  config = metadata.sqlite_metadata_connection_config(
      os.path.join(run["pipeline_root"], METADATA_FILE))
  return metadata.Metadata(config)


def _summary(run):
  with open(os.path.join(run["pipeline_root"], "run_summary.json")) as handle:
    return json.load(handle)


def _eval_records(run, limit=64):
  with _store(run) as handle:
    examples = [a for a in handle.store.get_artifacts_by_type("Examples")
                if "rows_read" in a.custom_properties][-1]
  return list(example_io.read_records(examples.uri, "eval"))[:limit]


def test_every_component_succeeds_and_the_pushed_model_scores_examples(run):
  with _store(run) as handle:
    executions = handle.store.get_executions()
    contexts = {c.name for c in handle.store.get_contexts()}
  assert len(executions) == len(COMPONENT_IDS)
  assert all(e.last_known_state == e.COMPLETE for e in executions)
  assert {f"eta_ctr.{c}" for c in COMPONENT_IDS} <= contexts
  summary = _summary(run)
  assert summary["blessed"] and summary["pushed"]
  versions = glob.glob(os.path.join(run["serving"], "*", "saved_model.pb"))
  assert len(versions) == 1
  model = tf.saved_model.load(os.path.dirname(versions[0]))
  records = _eval_records(run)
  probabilities = model.signatures["serving_default"](examples=tf.constant(records))
  probabilities = probabilities["probabilities"].numpy()
  assert probabilities.shape == (len(records),)
  assert ((probabilities > 0) & (probabilities < 1)).all()
  assert summary["metrics"]["example_count"] > 0 and 0.5 < summary["metrics"]["auc"] <= 1
  # The Evaluator scored the eval split alone; the blessing's rules are in the summary.
  with _store(run) as handle:
    examples = [a for a in handle.store.get_artifacts_by_type("Examples")
                if "rows_read" in a.custom_properties][-1]
    model_run = handle.store.get_artifacts_by_type("ModelRun")[-1]
  report = json.loads(examples.custom_properties["ingest_report"].string_value)
  assert summary["metrics"]["example_count"] == report["examples"]["eval"]
  assert summary["metrics"]["logloss_over_base_rate"] <= 0
  assert abs(summary["metrics"]["calibration"] - 1) <= 0.2
  # (The AUC change rule joins once there is a blessed model to compare with.)
  assert summary["blessing_rules"] == ["auc >= 0.5", "logloss_over_base_rate <= 0",
                                       "calibration in [0.8, 1.2]"]
  # The Trainer chose its step on the valid split, within the budget (150 steps,
  # validated at 100 and 150): metrics.json and the summary say which.
  with open(os.path.join(model_run.uri, "metrics.json")) as handle:
    trained = json.load(handle)
  assert [entry["step"] for entry in trained["validation_history"]] == [100, 150]
  assert trained["best_step"] in (100, 150) and trained["train_steps_budget"] == 150
  # The default selection metric: the highest valid AUC - logloss.
  best = max(trained["validation_history"], key=lambda entry: entry["auc"] - entry["logloss"])
  assert trained["best_step"] == best["step"] and trained["valid_logloss"] == best["logloss"]
  assert summary["training"]["best_step"] == trained["best_step"]


@pytest.mark.parametrize("model_name", ["eta", "din_long"])
def test_export_equals_in_process_model_and_score_equals_serving_default(run, tmp_path,
                                                                        model_name):
  with _store(run) as handle:
    store = handle.store
    transform_graph = store.get_artifacts_by_type("TransformGraph")[-1].uri
    transformed = [a for a in store.get_artifacts_by_type("Examples")
                   if "rows_read" not in a.custom_properties][-1].uri
  config = flags.config_from_args(cli.build_parser().parse_args(
      run["args"] + ["--model", model_name, "--train-steps", "30"]),
      source=EtaConfig().source)
  model, _ = train_model(config, transform_graph, os.path.join(transformed, "Split-train", "*"),
                         os.path.join(transformed, "Split-valid", "*"))
  import tensorflow_transform as tft
  tft_output = tft.TFTransformOutput(transform_graph)
  export_dir = export_serving_model(model, tft_output, config, str(tmp_path / "model"))
  loaded = tf.saved_model.load(export_dir)

  # Exported model == in-process model, through the Transform graph.
  records = _eval_records(run, limit=32)
  served = loaded.signatures["serving_default"](examples=tf.constant(records))["probabilities"]
  raw_spec = tft_output.raw_feature_spec()
  raw_spec.pop("label")
  in_process = tf.sigmoid(model(tft_output.transform_features_layer()(
      tf.io.parse_example(tf.constant(records), raw_spec))))
  np.testing.assert_allclose(served.numpy(), in_process.numpy(), atol=1e-6)

  # `score` == `serving_default`: one user's history against several candidates.
  for record in records[:4]:
    example = example_io.example_to_dict(record)
    candidates = [(e["item_id"][0], e["category"][0]) for e in
                  map(example_io.example_to_dict, records[:6])] + [("never-seen", "nope")]
    rewritten = []
    for item, category in candidates:
      ex = tf.train.Example.FromString(record)
      ex.features.feature["item_id"].bytes_list.value[:] = [item.encode()]
      ex.features.feature["category"].bytes_list.value[:] = [category.encode()]
      rewritten.append(ex.SerializeToString())
    expected = loaded.signatures["serving_default"](examples=tf.constant(rewritten))
    scored = loaded.signatures["score"](
        hist_item_ids=tf.constant(example["hist_item_ids"], tf.string),
        hist_categories=tf.constant(example["hist_categories"], tf.string),
        hist_timestamps=tf.constant(example["hist_timestamps"], tf.int64),
        item_ids=tf.constant([c[0] for c in candidates]),
        categories=tf.constant([c[1] for c in candidates]),
        request_time=tf.constant(example["timestamp"][0], tf.int64))
    np.testing.assert_allclose(scored["probabilities"].numpy(),
                               expected["probabilities"].numpy(), atol=1e-6)
    if model_name == "eta":
      positions = scored["retrieved_positions"].numpy()
      length = min(len(example["hist_item_ids"]), config.model.long_seq_len)
      assert positions.shape == (len(candidates), config.model.top_k)
      assert ((positions >= -1) & (positions < max(length, 1))).all()
      assert ((positions >= 0).sum(axis=1) == min(length, config.model.top_k)).all()
    else:
      assert "retrieved_positions" not in scored


def test_second_run_hits_the_cache(run, capsys):
  assert cli.main(run["args"] + AUC_FLOOR) == 0
  err = capsys.readouterr().err
  for component in ("ClickLogExampleGen", "Transform", "Trainer"):
    assert f"{component} reused from cache" in err
  with _store(run) as handle:
    trainers = [e for e in handle.store.get_executions()
                if "Trainer" in handle.store.get_execution_types_by_id([e.type_id])[0].name]
  assert [e.last_known_state for e in trainers] == [trainers[0].COMPLETE, trainers[0].CACHED]


def test_blessing_refuses_a_bad_model_and_nothing_is_pushed(run, capsys):
  before = sorted(os.listdir(run["serving"]))
  # A learning rate of 0 leaves the model as initialised: its predictions carry no
  # information, so its logloss is above the base-rate predictor's; and the AUC floor
  # cannot be met.
  assert cli.main(run["args"] + ["--learning-rate", "0.0", "--auc-floor", "0.99"]) == 0
  captured = capsys.readouterr()
  # Only the model changed: ingest and Transform come from the cache.
  assert "ClickLogExampleGen reused from cache" in captured.err
  assert "Transform reused from cache" in captured.err
  summary = _summary(run)
  assert summary["blessed"] is False and summary["pushed"] is False
  metrics = summary["metrics"]
  assert metrics["logloss_over_base_rate"] > 0
  # Refused for exactly the rules it breaks (calibration: |mean prediction / mean label
  # - 1| <= 0.2, which an untrained model near 0.5 may or may not meet on this log).
  failed = set(re.findall(r'^\s*name: "(\w+)"', "\n".join(summary["not_blessed_because"]),
                          re.MULTILINE))
  assert failed == {"auc", "logloss_over_base_rate"} | (
      {"calibration"} if abs(metrics["calibration"] - 1) > 0.2 else set())
  assert sorted(os.listdir(run["serving"])) == before
  assert "blessed:  NO" in captured.out
