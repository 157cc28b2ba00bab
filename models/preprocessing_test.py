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
