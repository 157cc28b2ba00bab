"""Tests of `eta bench retrieval`: recall against a brute-force NumPy reference, its
behaviour with bits and history length, the SavedModel table reader, and smoke output."""

import argparse
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from benchmarks import retrieval_recall as rr
from eta_ctr.config import ModelConfig


def _random_queries(rng, items=80, dim=8, queries=40, length=30):
  table = rng.normal(size=(items, dim)).astype(np.float32)
  table[0] = 0.0
  lengths = rng.integers(1, length + 1, size=queries)
  # Distinct items per history: no exact ties, so the exact top-k is one set.
  histories = np.stack([rng.choice(np.arange(1, items), length, replace=False)
                        for _ in range(queries)])
  histories[np.arange(length)[None, :] >= lengths[:, None]] = 0
  candidates = rng.integers(1, items, size=queries)
  return table, candidates, histories, lengths


def _reference_recall(table, candidates, histories, projection, k, metric):
  """Brute force: NumPy sign bits, sorted (distance, position), exact top-k as a set."""
  bits = table @ projection > 0
  vectors = table
  if metric == "cosine":
    vectors = table / np.maximum(np.linalg.norm(table, axis=1, keepdims=True), 1e-12)
  recalls = []
  for candidate, history in zip(candidates, histories):
    valid = [t for t in range(len(history)) if history[t] > 0]
    distance = {t: int(np.sum(bits[candidate] != bits[history[t]])) for t in valid}
    hashed = sorted(valid, key=lambda t: (distance[t], t))[:k]
    score = {t: float(vectors[history[t]] @ vectors[candidate]) for t in valid}
    exact = sorted(valid, key=lambda t: (-score[t], t))[:k]
    recalls.append(len(set(hashed) & set(exact)) / k)
  return np.array(recalls)


def _layer_projection(dim, num_bits, seed):
  """The projection the SimHash layer draws for this seed."""
  from models.layers import SimHash
  layer = SimHash(num_bits=num_bits, seed=seed)
  layer.build((None, dim))
  return layer.projection.numpy()


@pytest.mark.parametrize("metric", rr.METRICS)
@pytest.mark.parametrize("num_bits", [16, 100])
def test_recall_matches_brute_force(metric, num_bits):
  rng = np.random.default_rng(3)
  table, candidates, histories, lengths = _random_queries(rng)
  k, seed = 5, 11
  selected = rr.simhash_top_k(table, candidates, histories, num_bits, seed, k)
  scores = rr.exact_scores(table, candidates, histories, metric)
  recall = rr.recall_per_query(scores, selected, k)
  projection = _layer_projection(table.shape[1], num_bits, seed)
  reference = _reference_recall(table, candidates, histories, projection, k, metric)
  longer = lengths > k  # shorter rows differ by definition (fewer than k to choose)
  assert longer.sum() > 10
  np.testing.assert_allclose(recall[longer], reference[longer])


def test_exact_ties_are_not_misses():
  scores = np.array([[3.0, 2.0, 2.0, 1.0, -np.inf]], np.float32)
  # Position 2 ties with position 1 for the second place; position 3 is a miss.
  assert rr.recall_per_query(scores, np.array([[0, 2]]), 2)[0] == 1.0
  assert rr.recall_per_query(scores, np.array([[0, 3]]), 2)[0] == 0.5
  assert rr.recall_per_query(scores, np.array([[4, 0]]), 2)[0] == 0.5  # padding never hits


def test_recall_is_one_when_k_is_the_history_length():
  rng = np.random.default_rng(0)
  table, candidates, histories, _ = _random_queries(rng, length=12)
  k = 7
  histories[:, k:] = 0
  histories[:, :k] = rng.integers(1, table.shape[0], size=(len(candidates), k))
  selected = rr.simhash_top_k(table, candidates, histories, 16, 0, k)
  for metric in rr.METRICS:
    scores = rr.exact_scores(table, candidates, histories, metric)
    np.testing.assert_array_equal(rr.recall_per_query(scores, selected, k), 1.0)
  assert rr.random_recall(np.array([k + 1, 2 * k]), k) == pytest.approx((k / (k + 1) + 0.5) / 2)


def test_recall_rises_with_bits_on_structured_embeddings():
  setup = rr.synthetic_setup(queries=150, seed=1)
  rows = rr.measure(setup.trained, setup.candidates, setup.histories, [8, 64, 256], [10],
                    seeds=3, name="trained")
  for metric in rr.METRICS:
    means = [r["recall_mean"] for r in sorted(rows, key=lambda r: r["bits"])
             if r["metric"] == metric]
    assert means[0] < means[1] - 0.02 and means[1] <= means[2] + 0.01, (metric, means)
  # SimHash estimates angles: with many bits the cosine top-k is nearly exact.
  assert max(r["recall_mean"] for r in rows if r["metric"] == "cosine") > 0.8
  floor = rr.random_recall((setup.histories > 0).sum(1), 10)
  assert all(r["recall_mean"] > floor + 0.1 for r in rows)


def test_item_table_is_read_from_saved_variables(tmp_path):
  from models.architectures.registry import build_model
  config = ModelConfig(long_seq_len=8, short_seq_len=4, top_k=2, embedding_dim=6)
  model = build_model(config, 20, 5)
  model.item_embedding(tf.constant([0], tf.int64))
  tf.train.Checkpoint(model=model).write(str(tmp_path / "17" / "variables" / "variables"))
  os.makedirs(tmp_path / "3")  # not a SavedModel: skipped
  table = rr.saved_model_item_embeddings(str(tmp_path))
  np.testing.assert_array_equal(table, model.item_embedding.embeddings.numpy())
  with pytest.raises(FileNotFoundError):
    rr.saved_model_item_embeddings(str(tmp_path / "3"))


def test_smoke_run_writes_json_markdown_and_plot(tmp_path):
  parser = argparse.ArgumentParser()
  rr.add_arguments(parser)
  args = parser.parse_args(["--bits", "64,16", "--top-k", "8"])
  assert args.bits == [16, 64]
  args.output, args.smoke, args.beam_args = str(tmp_path), True, []
  result = rr.run(args)
  assert result["markdown"].startswith("## Retrieval recall")
  with open(tmp_path / "retrieval.json") as handle:
    stored = json.load(handle)
  assert stored["smoke"] and stored["bits"] == [16, 64]
  # trained + initial tables x 2 metrics x 1 k x 2 bit counts
  assert len(stored["rows"]) == 8
  assert all(0.0 <= row["recall_mean"] <= 1.0 for row in stored["rows"])
  assert (tmp_path / "retrieval.md").read_text().startswith("## Retrieval recall")
  assert (tmp_path / "retrieval.png").stat().st_size > 1000


def test_transform_cache_key_follows_only_what_transform_reads():
  import dataclasses
  from eta_ctr.config import EtaConfig
  base = EtaConfig.for_movielens()
  same = base.replace(model=dataclasses.replace(base.model, top_k=48, hash_bits=256))
  longer = base.replace(model=dataclasses.replace(base.model, long_seq_len=512))
  assert rr._transform_key(same) == rr._transform_key(base)
  assert rr._transform_key(longer) != rr._transform_key(base)
