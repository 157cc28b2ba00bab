"""The exported signatures with declared side features, on a tiny tf.Transform
output: `serving_default` parses them, `score` takes them per request / candidate /
history and agrees with `serving_default`."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

from eta_ctr.config import (EtaConfig, FeatureSpec, IngestConfig, ModelConfig, SourceConfig,
                            TrainerConfig)
from models import export, signatures, trainer
from models.preprocessing import make_preprocessing_fn
from pipeline.schema import build_schema

SPECS = (FeatureSpec("age", "user", "categorical"),
         FeatureSpec("device", "context", "categorical", default="web"),
         FeatureSpec("hour", "context", "numeric"),
         FeatureSpec("brand", "item", "categorical", in_history=True),
         FeatureSpec("price", "item", "numeric", in_history=True),
         FeatureSpec("genres", "item", "categorical_list", max_values=2))
MODEL = ModelConfig(long_seq_len=8, short_seq_len=2, top_k=3, embedding_dim=4, hash_bits=32,
                    mlp_units=(8,), embedding_init_stddev=0.5)
CONFIG = EtaConfig(source=SourceConfig(format="csv"), model=MODEL, features=SPECS)
GENRES = ["drama", "comedy", "horror"]


def _item(n):
  """An item's built-in and item-feature values."""
  return {"item_id": f"i{n}", "category": f"c{n % 3}", "brand": f"b{n % 4}",
          "price": 1.0 + n % 5, "genres": "|".join(GENRES[n % 3:n % 3 + 1 + n % 2])}


def _raw_examples(count=24, seed=0):
  rng = np.random.default_rng(seed)
  rows = []
  for n in range(count):
    item = _item(int(rng.integers(0, 12)))
    history = [_item(int(i)) for i in rng.integers(0, 12, size=int(rng.integers(0, 7)))]
    hour_missing = int(n % 4 == 0)
    rows.append({
        "user_id": [f"u{n % 5}".encode()], "item_id": [item["item_id"].encode()],
        "category": [item["category"].encode()], "timestamp": [100_000 + n],
        "label": [n % 2],
        "hist_item_ids": [h["item_id"].encode() for h in history],
        "hist_categories": [h["category"].encode() for h in history],
        "hist_timestamps": [100_000 - 600 * (j + 1) for j in range(len(history))],
        "age": [["18", "30", "45"][n % 3].encode()],
        "device": [["ios", "web", "android"][n % 3].encode()],
        "hour": [0.0 if hour_missing else float(n % 24)], "hour_missing": [hour_missing],
        "brand": [item["brand"].encode()], "price": [item["price"]], "price_missing": [0],
        "genres": [g.encode() for g in item["genres"].split("|") if g],
        "hist_brand": [h["brand"].encode() for h in history],
        "hist_price": [h["price"] for h in history],
        "hist_price_missing": [0] * len(history)})
  return rows


def _serialize(row, raw_spec):
  example = tf.train.Example()
  for name, values in row.items():
    feature = example.features.feature[name]
    dtype = raw_spec[name].dtype
    if dtype == tf.string:
      feature.bytes_list.value.extend(values)
    elif dtype == tf.int64:
      feature.int64_list.value.extend(values)
    else:
      feature.float_list.value.extend(values)
  return example.SerializeToString()


def _transform(tmp_path_factory, specs):
  schema = build_schema(IngestConfig(), specs)
  metadata = dataset_metadata.DatasetMetadata(schema)
  rows = _raw_examples()
  if not specs:
    rows = [{name: value for name, value in row.items() if name in schema_names(schema)}
            for row in rows]
  out = str(tmp_path_factory.mktemp("tft_output"))
  with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft_tmp"))):
    (transformed, transformed_metadata), transform_fn = (
        (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            make_preprocessing_fn(MODEL, specs)))
    _ = transform_fn | tft_beam.WriteTransformFn(out)
  # The raw schema, as the TFX Transform component writes it.
  metadata_io.write_metadata(metadata, os.path.join(out, tft.TFTransformOutput.RAW_METADATA_DIR))
  # The transformed examples, as Transform writes them for the Trainer.
  coder = tft.coders.ExampleProtoCoder(transformed_metadata.dataset_metadata.schema)
  train_file = os.path.join(out, "transformed_train.gz")
  with tf.io.TFRecordWriter(train_file, options="GZIP") as writer:
    for row in transformed:
      writer.write(coder.encode(row))
  output = tft.TFTransformOutput(out)
  raw_spec = output.raw_feature_spec()
  return output, [_serialize(row, raw_spec) for row in rows], rows, out, train_file


def schema_names(schema):
  return {feature.name for feature in schema.feature}


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory):
  return _transform(tmp_path_factory, SPECS)


def test_without_features_score_keeps_its_signature():
  fixed = export.ServingModule.score.input_signature
  dict_form = export._score_signature(())[0]
  assert [s.name for s in fixed] == list(dict_form) == list(signatures.BUILT_IN_SCORE_INPUTS)
  assert all(s == dict_form[s.name] for s in fixed)
  assert signatures.score_inputs() == signatures.BUILT_IN_SCORE_INPUTS


def test_without_features_the_export_is_as_before(tmp_path_factory, tmp_path):
  output, records, rows, transform_dir, train_file = _transform(tmp_path_factory, ())
  config = EtaConfig(model=MODEL, trainer=TrainerConfig(batch_size=8, train_steps=2))
  assert trainer.side_feature_sizes(output, config) is None
  model, _ = trainer.train_model(config, transform_dir, train_file, None)
  assert not model.side_features and model.side_encoder is None
  loaded = tf.saved_model.load(export.export_serving_model(model, output, config,
                                                           str(tmp_path / "model")))
  score = loaded.signatures["score"]
  assert sorted(score.structured_input_signature[1]) == sorted(
      signatures.BUILT_IN_SCORE_INPUTS)
  row = next(row for row in rows if row["hist_item_ids"])
  record = records[rows.index(row)]
  scored = score(hist_item_ids=tf.constant(row["hist_item_ids"]),
                 hist_categories=tf.constant(row["hist_categories"]),
                 hist_timestamps=tf.constant(row["hist_timestamps"], tf.int64),
                 item_ids=tf.constant(row["item_id"]), categories=tf.constant(row["category"]),
                 request_time=tf.constant(row["timestamp"][0], tf.int64))
  served = loaded.signatures["serving_default"](examples=tf.constant([record]))
  np.testing.assert_allclose(scored["probabilities"].numpy(),
                             served["probabilities"].numpy(), atol=1e-6)


def _rewrite(record, **values):
  """A serialized example with some features replaced (bytes / float / int lists)."""
  example = tf.train.Example.FromString(record)
  for name, value in values.items():
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    del getattr(feature, kind).value[:]
    getattr(feature, kind).value.extend(value)
  return example.SerializeToString()


@pytest.mark.parametrize("model_name", ["eta", "din_long"])
def test_score_equals_serving_default_with_features(transform_output, tmp_path, model_name):
  output, records, rows, transform_dir, train_file = transform_output
  raw_spec = output.raw_feature_spec()
  assert set(signatures.example_features(SPECS)) <= set(raw_spec)
  config = CONFIG.replace(model=ModelConfig(**{**MODEL.__dict__, "name": model_name}),
                          trainer=TrainerConfig(batch_size=8, train_steps=4,
                                                shuffle_buffer=8))
  side = trainer.side_feature_sizes(output, config)
  assert side.vocab_sizes == {"age": 5, "device": 5, "brand": 6, "genres": 5}
  # The Trainer's path: the transformed examples' side features reach the model.
  model, metrics = trainer.train_model(config, transform_dir, train_file, None)
  assert metrics["steps_trained"] == 4
  assert model.side_features.specs == SPECS
  raw_spec.pop("label")
  tft_layer = output.transform_features_layer()
  in_process = tf.sigmoid(model(tft_layer(tf.io.parse_example(tf.constant(records), raw_spec))))
  export_dir = export.export_serving_model(model, output, config, str(tmp_path / "model"))
  loaded = tf.saved_model.load(export_dir)
  serve = loaded.signatures["serving_default"]
  score = loaded.signatures["score"]
  assert sorted(score.structured_input_signature[1]) == sorted(signatures.score_inputs(SPECS))
  assert score.structured_input_signature[1]["age"].shape == []
  assert score.structured_input_signature[1]["hist_price"].dtype == tf.float32

  served = serve(examples=tf.constant(records))["probabilities"].numpy()
  np.testing.assert_allclose(served, in_process.numpy(), atol=1e-6)

  candidates = [_item(n) for n in (0, 1, 5, 7)] + [
      {"item_id": "never-seen", "category": "nope", "brand": "", "price": float("nan"),
       "genres": ""}]
  checked = 0
  for record, row in zip(records, rows):
    if not row["hist_item_ids"] or checked == 3:
      continue
    checked += 1
    request = {
        "hist_item_ids": tf.constant(row["hist_item_ids"]),
        "hist_categories": tf.constant(row["hist_categories"]),
        "hist_timestamps": tf.constant(row["hist_timestamps"], tf.int64),
        "item_ids": tf.constant([c["item_id"] for c in candidates]),
        "categories": tf.constant([c["category"] for c in candidates]),
        "request_time": tf.constant(row["timestamp"][0], tf.int64),
        "age": tf.constant(row["age"][0]), "device": tf.constant(row["device"][0]),
        "hour": tf.constant(np.nan if row["hour_missing"][0] else row["hour"][0], tf.float32),
        "brand": tf.constant([c["brand"] for c in candidates]),
        "price": tf.constant([c["price"] for c in candidates], tf.float32),
        "genres": tf.constant([c["genres"] for c in candidates]),
        "hist_brand": tf.constant(row["hist_brand"]),
        "hist_price": tf.constant(row["hist_price"], tf.float32)}
    expected = serve(examples=tf.constant([_rewrite(
        record, item_id=[c["item_id"].encode()], category=[c["category"].encode()],
        brand=[c["brand"].encode()], price=[0.0 if np.isnan(c["price"]) else c["price"]],
        price_missing=[int(np.isnan(c["price"]))],
        genres=[g.encode() for g in c["genres"].split("|") if g]) for c in candidates]))
    scored = score(**request)
    probabilities = scored["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, expected["probabilities"].numpy(), atol=1e-6)
    if model_name == "eta":
      assert scored["retrieved_positions"].shape == (len(candidates), MODEL.top_k)

    # A missing context value: "" is the declared default (web), NaN the mean.
    same = score(**dict(request, device=tf.constant("web"), hour=tf.constant(np.nan)))
    np.testing.assert_allclose(
        score(**dict(request, device=tf.constant(" "), hour=tf.constant(np.nan)))[
            "probabilities"].numpy(), same["probabilities"].numpy(), atol=1e-7)
    np.testing.assert_allclose(same["probabilities"].numpy(), serve(examples=tf.constant([
        _rewrite(record, item_id=[c["item_id"].encode()], category=[c["category"].encode()],
                 brand=[c["brand"].encode()],
                 price=[0.0 if np.isnan(c["price"]) else c["price"]],
                 price_missing=[int(np.isnan(c["price"]))],
                 genres=[g.encode() for g in c["genres"].split("|") if g],
                 device=[b"web"], hour=[0.0], hour_missing=[1])
        for c in candidates]))["probabilities"].numpy(), atol=1e-6)

    # Every feature moves the scores: a user's for all candidates, a candidate's
    # for that candidate only, the history's for all.
    other_age = b"45" if row["age"][0] != b"45" else b"18"
    moved = score(**dict(request, age=tf.constant(other_age)))["probabilities"].numpy()
    assert (np.abs(moved - probabilities) > 1e-7).all()
    prices = np.array([c["price"] for c in candidates], np.float32)
    prices[1] += 3.0
    moved = score(**dict(request, price=tf.constant(prices)))["probabilities"].numpy()
    assert abs(moved[1] - probabilities[1]) > 1e-7
    np.testing.assert_allclose(np.delete(moved, 1), np.delete(probabilities, 1), atol=1e-7)
    brands = [b"b9"] * len(row["hist_brand"])  # out of the vocabulary
    moved = score(**dict(request, hist_brand=tf.constant(brands)))["probabilities"].numpy()
    assert (np.abs(moved - probabilities) > 1e-7).any()
  assert checked == 3

  with pytest.raises(tf.errors.InvalidArgumentError, match="brand and item_ids differ"):
    score(**dict(request, brand=tf.constant(["b1"])))
  with pytest.raises(tf.errors.InvalidArgumentError, match="hist_price and hist_item_ids"):
    score(**dict(request, hist_price=tf.constant([], tf.float32)))
