"""One user's history of L behaviours and B candidates, as the model sees them
(transformed indices) and as a client sends them (raw ids for `score`), plus the
Transform graph that maps one to the other for a given L.

Latency does not depend on trained weights or on which items are asked for, so
a random catalogue of `vocab` items is enough; every id is in the vocabulary.
"""

import os
from typing import Dict

import numpy as np

from eta_ctr.config import ModelConfig

CATEGORIES = 200
REQUEST_TIME = 1_700_000_000


def item_id(index: int) -> str:
  return f"i{index}"


def category_of(index: int) -> int:
  return index % CATEGORIES


def transformed_request(config: ModelConfig, history_length: int, candidates: int,
                        vocab: int, seed: int = 0) -> Dict:
  """The model inputs of one request: history [1, L], candidates [1, B] (int64 tensors)."""
  import tensorflow as tf
  from models import features
  rng = np.random.default_rng(seed)
  items = rng.integers(1, vocab + 1, size=(1, history_length))
  categories = items % CATEGORIES + 1
  # log2-minute gap buckets grow with age; the history is most recent first.
  gaps = np.sort(rng.integers(1, config.time_gap_buckets, size=(1, history_length)), axis=1)
  candidate_items = rng.choice(np.arange(1, vocab + 1), size=(1, candidates),
                               replace=candidates > vocab)
  short = config.short_seq_len
  data = {
      features.ITEM: candidate_items, features.CATEGORY: candidate_items % CATEGORIES + 1,
      features.LONG_ITEMS: items, features.LONG_CATEGORIES: categories,
      features.LONG_TIME_GAPS: gaps, features.LONG_LENGTH: np.array([history_length]),
      features.SHORT_ITEMS: items[:, :short], features.SHORT_CATEGORIES: categories[:, :short],
      features.SHORT_TIME_GAPS: gaps[:, :short],
      features.SHORT_LENGTH: np.array([min(short, history_length)]),
  }
  return {name: tf.constant(value, tf.int64) for name, value in data.items()}


def raw_request(history_length: int, candidates: int, vocab: int, seed: int = 0):
  """The `score` signature's inputs (serving.requests.ScoreQuery) for one request."""
  from serving.requests import Behaviour, Candidate, ScoreQuery
  rng = np.random.default_rng(seed)
  items = rng.integers(0, vocab, size=history_length)
  ages = np.cumsum(rng.integers(60, 7 * 86_400, size=history_length))
  history = [Behaviour(item_id(i), f"c{category_of(i)}", int(REQUEST_TIME - age))
             for i, age in zip(items.tolist(), ages.tolist())]
  chosen = rng.choice(vocab, size=candidates, replace=candidates > vocab)
  return ScoreQuery(history=history,
                    candidates=[Candidate(item_id(i), f"c{category_of(i)}") for i in chosen.tolist()],
                    request_time=REQUEST_TIME)


def build_transform_graph(config: ModelConfig, vocab: int, output_dir: str) -> str:
  """Analyses a catalogue of `vocab` items with the project's preprocessing_fn
  (padding to config.long_seq_len) and writes the transform graph to output_dir."""
  import apache_beam as beam
  import tensorflow as tf
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
  from components import events
  from models.preprocessing import make_preprocessing_fn

  spec = {
      events.USER_ID: tf.io.FixedLenFeature([], tf.string),
      events.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
      events.CATEGORY: tf.io.FixedLenFeature([], tf.string),
      events.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
      events.LABEL: tf.io.FixedLenFeature([], tf.int64),
      events.HIST_ITEM_IDS: tf.io.VarLenFeature(tf.string),
      events.HIST_CATEGORIES: tf.io.VarLenFeature(tf.string),
      events.HIST_TIMESTAMPS: tf.io.VarLenFeature(tf.int64),
  }
  rows = [{events.USER_ID: b"u", events.ITEM_ID: item_id(i).encode(),
           events.CATEGORY: f"c{category_of(i)}".encode(), events.TIMESTAMP: REQUEST_TIME,
           events.LABEL: 0, events.HIST_ITEM_IDS: [], events.HIST_CATEGORIES: [],
           events.HIST_TIMESTAMPS: []} for i in range(vocab)]
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
  with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=os.path.join(output_dir, "tmp")):
    raw = pipeline | "Catalogue" >> beam.Create(rows)
    transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(make_preprocessing_fn(config))
    _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    # The export reads the raw feature spec from here, as from a Transform component's output.
    _ = metadata | tft_beam.WriteMetadata(
        os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR), pipeline=pipeline)
  return output_dir
