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


# --- side features ----------------------------------------------------------

def _features_specs():
  from serving.testing import TOY_FEATURES  # pylint: disable=g-import-not-at-top
  return TOY_FEATURES


def _equal_inputs(got, expected):
  assert sorted(got) == sorted(expected)
  for name, value in expected.items():
    assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
    if value.dtype.kind == "f":
      np.testing.assert_array_equal(got[name], value)  # NaN == NaN here
    else:
      assert got[name].tolist() == value.tolist(), name


def test_history_files_carry_the_features_in_both_forms(tmp_path):
  specs = _features_specs()
  events = {"history": [{"item_id": "a", "category": "x", "timestamp": 10, "price": 2},
                        {"item_id": "b", "category": "x", "timestamp": 30}],
            "candidates": [{"item_id": "c", "category": "y", "price": "3.5",
                            "genres": ["drama", "comedy"]}, "d:z"],
            "request_time": 40, "segment": " s1 ", "device": None}
  columns = {"hist_item_ids": ["a", "b"], "hist_categories": ["x", "x"],
             "hist_timestamps": [10, 30], "item_ids": ["c", "d"], "categories": ["y", "z"],
             "request_time": 40, "segment": "s1", "price": [3.5, None],
             "genres": ["drama|comedy", ""], "hist_price": [2.0, None]}
  expected = {
      "segment": np.array(b"s1", dtype=object), "device": np.array(b"", dtype=object),
      "price": np.array([3.5, np.nan], np.float32),
      "hist_price": np.array([np.nan, 2.0], np.float32),  # most recent first: b, then a
      "genres": np.array([b"drama|comedy", b""], dtype=object)}
  for data in (events, columns):
    path = tmp_path / "history.json"
    path.write_text(json.dumps(data))
    inputs = requests.score_inputs(requests.load_history_file(str(path), specs), specs)
    assert sorted(inputs) == sorted(signatures.score_inputs(specs))
    _equal_inputs({name: inputs[name] for name in expected}, expected)
  # Without declarations the file's feature keys are not read, as before.
  assert sorted(requests.score_inputs(requests.query_from_json(events))) == sorted(
      signatures.BUILT_IN_SCORE_INPUTS)


def test_bad_feature_values_and_lists_not_parallel_are_named():
  specs = _features_specs()
  base = {"history": [{"item_id": "a", "timestamp": 10}], "candidates": ["c:y"]}
  with pytest.raises(ValueError, match="feature price: price 'cheap' is not a number"):
    requests.score_inputs(requests.query_from_json(
        dict(base, candidates=[{"item_id": "c", "price": "cheap"}]), specs), specs)
  with pytest.raises(ValueError, match="feature segment: segment value contains control"):
    requests.examples_for_query(requests.query_from_json(dict(base, segment="a\x00b"), specs),
                                specs)
  with pytest.raises(ValueError, match="price must be a list parallel to item_ids"):
    requests.query_from_json({"hist_item_ids": ["a"], "hist_timestamps": [1],
                              "item_ids": ["c", "d"], "price": [1.0]}, specs)


def test_examples_written_for_a_query_give_that_query_back():
  """examples_for_query writes the features as the ingest does; query_from_examples
  reads them back (user and context from the first, items from each example)."""
  specs = _features_specs()
  query = requests.ScoreQuery(
      history=[requests.Behaviour("h2", "c", 95, {}), requests.Behaviour("h1", "c", 90,
                                                                         {"price": 2.5})],
      candidates=[requests.Candidate("i1", "c", {"price": 3.0, "genres": "a|b"}),
                  requests.Candidate("i2", "c", {})],
      request_time=100, features={"segment": "s1", "device": "ios"})
  serialized = requests.examples_for_query(query, specs)
  example = tf.train.Example.FromString(serialized[1])
  feature_map = example.features.feature
  assert list(feature_map["price"].float_list.value) == [0.0]       # missing: 0, flagged
  assert list(feature_map["price_missing"].int64_list.value) == [1]
  assert list(feature_map["hist_price_missing"].int64_list.value) == [1, 0]
  assert list(feature_map["genres"].bytes_list.value) == []
  back = requests.query_from_examples([tf.train.Example.FromString(s) for s in serialized],
                                      specs)
  _equal_inputs(requests.score_inputs(back, specs), requests.score_inputs(query, specs))


def test_jsonl_examples_get_the_declared_types():
  specs = _features_specs()
  example = requests.example_from_json({"price": 3, "price_missing": 0, "segment": 7,
                                        "hist_price": [1, 2]}, specs)
  feature_map = example.features.feature
  assert list(feature_map["price"].float_list.value) == [3.0]
  assert list(feature_map["price_missing"].int64_list.value) == [0]
  assert list(feature_map["segment"].bytes_list.value) == [b"7"]
  assert list(feature_map["hist_price"].float_list.value) == [1.0, 2.0]
  with pytest.raises(ValueError, match="feature price"):
    requests.example_from_json({"price": None}, specs)
