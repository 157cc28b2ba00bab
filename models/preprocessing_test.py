"""preprocessing_fn on a few raw examples with tf.Transform's Beam implementation."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from eta_ctr.config import ModelConfig
from models import features
from models.preprocessing import make_preprocessing_fn, time_gap_bucket

RAW_SPEC = {
    "user_id": tf.io.FixedLenFeature([], tf.string),
    "item_id": tf.io.FixedLenFeature([], tf.string),
    "category": tf.io.FixedLenFeature([], tf.string),
    "timestamp": tf.io.FixedLenFeature([], tf.int64),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "hist_item_ids": tf.io.VarLenFeature(tf.string),
    "hist_categories": tf.io.VarLenFeature(tf.string),
    "hist_timestamps": tf.io.VarLenFeature(tf.int64),
}


def _example(item, category, timestamp, history, label=1):
  return {"user_id": b"u", "item_id": item, "category": category, "timestamp": timestamp,
          "label": label, "hist_item_ids": [h[0] for h in history],
          "hist_categories": [h[1] for h in history],
          "hist_timestamps": [h[2] for h in history]}


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  config = ModelConfig(long_seq_len=4, short_seq_len=2, top_k=2)
  raw = [
      _example(b"a", b"x", 10_000, []),
      _example(b"b", b"y", 10_000, [(b"a", b"x", 9_990)]),
      _example(b"c", b"x", 100_000, [(b"b", b"y", 99_940), (b"a", b"x", 90_000),
                                     (b"d", b"z", 50_000), (b"a", b"x", 40_000),
                                     (b"e", b"z", 1_000)]),
  ]
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
  with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft"))):
    (rows, _), transform_fn = ((raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
        make_preprocessing_fn(config)))
  return config, rows


def test_one_index_space_for_candidates_and_history_with_zero_padding(transformed):
  config, rows = transformed
  a_as_candidate = rows[0][features.ITEM]
  assert rows[1][features.LONG_ITEMS][0] == a_as_candidate  # same item, same index
  assert rows[2][features.LONG_ITEMS][1] == a_as_candidate
  assert a_as_candidate >= 1  # 0 is padding
  assert list(rows[0][features.LONG_ITEMS]) == [0, 0, 0, 0]
  assert list(rows[1][features.LONG_ITEMS])[1:] == [0, 0, 0]
  assert rows[1][features.LONG_CATEGORIES][0] == rows[0][features.CATEGORY]


def test_sequences_are_truncated_to_l_and_short_is_the_prefix(transformed):
  config, rows = transformed
  assert [r[features.LONG_LENGTH] for r in rows] == [0, 1, 4]  # 5 behaviours, L = 4
  assert [r[features.SHORT_LENGTH] for r in rows] == [0, 1, 2]
  for row in rows:
    assert len(row[features.LONG_ITEMS]) == config.long_seq_len
    np.testing.assert_array_equal(row[features.SHORT_ITEMS],
                                  row[features.LONG_ITEMS][:config.short_seq_len])
  assert rows[2][features.LABEL] == 1 and rows[2][features.USER_ID] == b"u"


def test_time_gaps_are_log2_minute_buckets(transformed):
  _, rows = transformed
  # gaps 60 s, 10,000 s, 50,000 s, 60,000 s -> log2(1 + minutes) floored, + 1
  expected = [int(np.floor(np.log2(1 + gap / 60))) + 1 for gap in (60, 10_000, 50_000, 60_000)]
  assert list(rows[2][features.LONG_TIME_GAPS]) == expected
  assert rows[1][features.LONG_TIME_GAPS][0] == 1  # 10 s: the first bucket
  assert list(rows[0][features.LONG_TIME_GAPS]) == [0, 0, 0, 0]  # padding


def test_time_gap_bucket_is_clipped():
  buckets = time_gap_bucket(tf.constant([0, 59, 60, 10**10, -5], tf.int64), 8).numpy()
  assert list(buckets) == [1, 1, 2, 7, 1]


# Side features: a user categorical capped at 2 values, an item categorical and an
# item numeric both kept in the history, a categorical list.
SIDE_SPEC = {
    **RAW_SPEC,
    "age": tf.io.FixedLenFeature([], tf.string),
    "brand": tf.io.FixedLenFeature([], tf.string),
    "price": tf.io.FixedLenFeature([], tf.float32),
    "price_missing": tf.io.FixedLenFeature([], tf.int64),
    "genres": tf.io.VarLenFeature(tf.string),
    "hist_brand": tf.io.VarLenFeature(tf.string),
    "hist_price": tf.io.VarLenFeature(tf.float32),
    "hist_price_missing": tf.io.VarLenFeature(tf.int64),
}


@pytest.fixture(scope="module")
def side_transformed(tmp_path_factory):
  from eta_ctr.config import FeatureSpec
  specs = (FeatureSpec("age", "user", "categorical", vocab_size=2),
           FeatureSpec("brand", "item", "categorical", in_history=True),
           FeatureSpec("price", "item", "numeric", in_history=True),
           FeatureSpec("genres", "item", "categorical_list", max_values=2))
  config = ModelConfig(long_seq_len=4, short_seq_len=2, top_k=2)

  def example(item, age, brand, price, genres, history):
    row = _example(item, b"x", 10_000, [(h[0], b"x", 9_000) for h in history])
    row.update(age=age, brand=brand, price=price if price is not None else 0.0,
               price_missing=int(price is None), genres=genres,
               hist_brand=[h[1] for h in history],
               hist_price=[h[2] if h[2] is not None else 0.0 for h in history],
               hist_price_missing=[int(h[2] is None) for h in history])
    return row

  raw = [example(b"a", b"18", b"acme", 1.0, [b"A", b"B", b"C"], []),
         example(b"b", b"18", b"zeta", 3.0, [], [(b"a", b"acme", 1.0)]),
         example(b"c", b"30", b"acme", None, [b"B"], [(b"b", b"zeta", 3.0),
                                                       (b"d", b"", None)]),
         example(b"d", b"", b"", 2.0, [b"A"], []),
         example(b"e", b"45", b"acme", 2.0, [], [])]
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SIDE_SPEC))
  with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft_side"))):
    (rows, output_metadata), _ = ((raw, metadata) | tft_beam.AnalyzeAndTransformDataset(
        make_preprocessing_fn(config, specs)))
  spec = schema_utils.schema_as_feature_spec(
      output_metadata.dataset_metadata.schema).feature_spec
  return specs, config, rows, spec


def test_side_features_produce_the_contracts_tensors(side_transformed):
  from components import side_features
  specs, config, rows, output_spec = side_transformed
  contract = side_features.transformed_features(specs, config.long_seq_len,
                                                config.short_seq_len)
  for tensor in contract:
    assert output_spec[tensor.name].dtype == tf.as_dtype(tensor.dtype), tensor.name
    assert tuple(output_spec[tensor.name].shape) == tuple(tensor.shape[1:]), tensor.name
    assert np.asarray(rows[0][tensor.name]).shape == tuple(tensor.shape[1:]), tensor.name


def test_item_categoricals_share_one_vocabulary_with_the_history(side_transformed):
  _, _, rows, _ = side_transformed
  acme = rows[0]["brand_idx"]
  assert acme >= 1 and rows[1]["long_brand_idx"][0] == acme  # same value, same index
  assert rows[2]["long_brand_idx"][0] == rows[1]["brand_idx"]  # zeta
  assert list(rows[0]["long_brand_idx"]) == [0, 0, 0, 0]  # padding
  np.testing.assert_array_equal(rows[2]["short_brand_idx"], rows[2]["long_brand_idx"][:2])
  # A missing brand ("") is in no vocabulary: an OOV bucket, after acme and zeta.
  assert rows[3]["brand_idx"] == 3 == rows[2]["long_brand_idx"][1]


def test_the_vocabulary_cap_sends_rare_values_to_the_oov_bucket(side_transformed):
  _, _, rows, _ = side_transformed
  ages = [row["age_idx"] for row in rows]
  assert ages[0] == ages[1] == 1  # 18: the most frequent
  assert ages[2] == 2 or ages[4] == 2  # one of 30 / 45 kept (top 2)
  assert ages[3] == 3  # missing: the OOV bucket (vocabulary 2 + 1)


def test_numerics_are_z_scored_over_the_present_values_and_missing_is_the_mean(side_transformed):
  _, _, rows, _ = side_transformed
  present = np.array([1.0, 3.0, 2.0, 2.0, 1.0, 3.0])  # candidates, then history values
  mean, std = present.mean(), present.std()
  assert rows[0]["price_z"] == pytest.approx((1.0 - mean) / std, rel=1e-5)
  assert rows[2]["price_z"] == 0.0 and rows[2]["price_missing"] == 1.0
  assert rows[0]["price_missing"] == 0.0
  assert rows[2]["long_price_z"][0] == pytest.approx((3.0 - mean) / std, rel=1e-5)
  assert list(rows[2]["long_price_missing"]) == [0.0, 1.0, 0.0, 0.0]
  assert list(rows[2]["long_price_z"])[1:] == [0.0, 0.0, 0.0]  # missing, then padding


def test_categorical_lists_keep_the_first_values_zero_padded(side_transformed):
  _, _, rows, _ = side_transformed
  assert len(rows[0]["genres_idx"]) == 2 and min(rows[0]["genres_idx"]) >= 1  # A, B of 3
  assert list(rows[1]["genres_idx"]) == [0, 0]
  assert rows[2]["genres_idx"][0] == rows[0]["genres_idx"][1]  # B
  assert rows[2]["genres_idx"][1] == 0
