"""Client-side request building: history files, candidates, example files, ranking."""

import json

import numpy as np
import pytest
import tensorflow as tf

from models import signatures
from serving import explain, requests


def test_history_file_in_both_forms_sorted_most_recent_first(tmp_path):
  events = {"history": [{"item_id": "a", "category": "x", "timestamp": 10},
                        {"item_id": "b", "timestamp": 30}],
            "candidates": ["c:y", {"item_id": "d"}], "request_time": 40}
  columns = {"hist_item_ids": ["a", "b"], "hist_categories": ["x", "unknown"],
             "hist_timestamps": [10, 30], "item_ids": ["c", "d"],
             "categories": ["y", "unknown"], "request_time": 40}
  for data in (events, columns):
    path = tmp_path / "history.json"
    path.write_text(json.dumps(data))
    query = requests.load_history_file(str(path))
    assert [b.item_id for b in query.history] == ["b", "a"]
    assert query.candidates == [requests.Candidate("c", "y"), requests.Candidate("d", "unknown")]
    inputs = requests.score_inputs(query)
    assert inputs[signatures.HIST_TIMESTAMPS].tolist() == [30, 10]
    assert inputs[signatures.REQUEST_TIME].shape == () and inputs[signatures.REQUEST_TIME] == 40
  (tmp_path / "bad.json").write_text("{")
  with pytest.raises(ValueError, match="not JSON"):
    requests.load_history_file(str(tmp_path / "bad.json"))
  with pytest.raises(ValueError, match="needs 'history'"):
    requests.query_from_json({"items": []})


def test_parse_candidates():
  assert requests.parse_candidates("i1:c1, i2 ,a:b:c") == [
      requests.Candidate("i1", "c1"), requests.Candidate("i2", "unknown"),
      requests.Candidate("a:b", "c")]
  with pytest.raises(ValueError):
    requests.parse_candidates(" , ")


def test_example_files_tfrecord_gz_and_jsonl(tmp_path):
  query = requests.ScoreQuery([requests.Behaviour("h", "c", 5)],
                              [requests.Candidate("i1", "c1"), requests.Candidate("i2", "c2")], 9)
  serialized = requests.examples_for_query(query)
  path = str(tmp_path / "data.tfrecord.gz")
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for record in serialized:
      writer.write(record)
  examples = requests.read_examples(path, limit=10)
  assert [e.SerializeToString() for e in examples] == serialized
  back = requests.query_from_examples(examples)
  assert back.history == query.history and back.candidates == query.candidates
  assert back.request_time == 9
  jsonl = tmp_path / "data.jsonl"
  jsonl.write_text(json.dumps({"user_id": "u", "item_id": 7, "category": "c", "timestamp": 9,
                               "hist_item_ids": [1], "hist_categories": ["c"],
                               "hist_timestamps": [5], "score": 0.5}) + "\n")
  (example,) = requests.read_examples(str(jsonl), limit=10)
  features = example.features.feature
  assert features["item_id"].bytes_list.value == [b"7"]
  assert features["hist_timestamps"].int64_list.value == [5]
  assert features["score"].float_list.value == [0.5]
  (tmp_path / "junk.tfrecord").write_bytes(b"junk")
  with pytest.raises(ValueError, match="no tf.Examples"):
    requests.read_examples(str(tmp_path / "junk.tfrecord"), limit=1)


def test_ranking_maps_retrieved_positions_to_behaviours():
  history = [requests.Behaviour("h0", "c0", 3), requests.Behaviour("h1", "c1", 2)]
  candidates = [requests.Candidate("a", "c0"), requests.Candidate("b", "c1")]
  ranked = explain.rank(candidates, np.array([0.2, 0.9]), history,
                        np.array([[0, -1], [1, 0]]), np.array([[4, -1], [2, 7]]))
  assert [r.candidate.item_id for r in ranked] == ["b", "a"]
  assert [(x.behaviour.item_id, x.distance) for x in ranked[0].retrieved] == [("h1", 2), ("h0", 7)]
  text = explain.format_ranking(ranked)
  assert "retrieved: #1 h1/c1 (d=2), #0 h0/c0 (d=7)" in text
  assert explain.as_json(ranked)[1]["retrieved"][0]["item_id"] == "h0"
