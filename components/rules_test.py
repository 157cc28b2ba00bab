"""The shared id rule: the request fast path never accepts what id_problem refuses."""

import pytest

from components import rules

CASES = [b"i1", b"", b" i1", b"i1 ", b"a\x07b", b"x" * 512, b"x" * 513, "\u5546".encode(),
         b"\xe9t\xe9", b"a\tb", b"ok-id_42"]


@pytest.mark.parametrize("value", CASES)
def test_fast_path_agrees_with_the_rule(value):
  batch = [b"i1", value, b"i2"]
  if rules.all_plain_ids(batch):
    assert all(rules.id_problem(v) is None for v in batch)
  else:  # not plain: either refused by the rule, or plain-ASCII-only failed (non-ASCII)
    assert rules.id_problem(value) is not None or not value.isascii()


def test_plain_batches_take_the_fast_path():
  assert rules.all_plain_ids([f"i{n}".encode() for n in range(100)] + [b"x" * 512])
  assert not rules.all_plain_ids([b"i1", "\u5546".encode()])  # valid, but checked one by one


def test_numeric_side_feature_values_are_finite_float32():
  assert rules.numeric_problem(0.0) is None and rules.numeric_problem(-3.4e38) is None
  assert rules.numeric_problem(float("nan")) == "is not a finite number"
  assert rules.numeric_problem(float("-inf")) == "is not a finite number"
  assert rules.numeric_problem(1e39) == "is beyond float32's range"


STRIP_CASES = [" s ", "\ts\r\n", "\x0bs\x0c", "s\x1f", "\x1cs", "\u3000s\u3000", "\xa0s",
               "\u2003", " ", "", "a b", "\u5546 "]


def test_strip_is_what_the_exported_graph_strips():
  """The ingest strips side-feature text in Python, the exported `score` graph
  with tf.strings.strip (models/export.py): both must give the same value, or a
  served value would be looked up as another vocabulary entry."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  graph = tf.strings.strip(tf.constant([case.encode() for case in STRIP_CASES])).numpy()
  assert [rules.strip(case) for case in STRIP_CASES] == [v.decode() for v in graph]


def test_a_control_character_at_an_end_is_refused_not_stripped():
  assert rules.strip("s\x1f") == "s\x1f"
  assert rules.id_problem(rules.strip("s\x1f")) == "contains control characters"
  assert rules.id_problem("\u3000s") is None  # not whitespace to TensorFlow: kept, valid
  assert rules.is_missing(" \t") and not rules.is_missing("\u3000")
