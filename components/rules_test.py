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
