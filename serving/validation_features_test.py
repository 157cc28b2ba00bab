"""Side features in requests: the ingest's value rule (side_features.parse_value)
on `score` inputs and on tf.Examples, item features parallel to the candidates
and the history, missing values valid; each failure INVALID_ARGUMENT naming the
input and the value."""

import numpy as np
import pytest
import tensorflow as tf

from components import side_features
from components.events import RowError
from models import signatures
from serving import validation
from serving.errors import ServingError
from serving.limits import Limits
from serving.testing import TOY_FEATURES
from serving.validation_test import EXAMPLE_SPECS, score_inputs, strings
from serving.warmup import warmup_example

SPECS = {name: tf.TensorSpec(shape, tf.as_dtype(dtype))
         for name, (dtype, shape) in signatures.score_input_specs(TOY_FEATURES).items()}
BY_NAME = {spec.name: spec for spec in TOY_FEATURES}


def feature_inputs(history=3, candidates=2, **overrides):
  inputs = score_inputs(history, candidates)
  inputs.update(segment=np.array(b"s1", dtype=object), device=np.array(b"ios", dtype=object),
                price=np.arange(candidates, dtype=np.float32) + 1.5,
                hist_price=np.full(history, 2.0, np.float32),
                genres=strings(*["drama|comedy"] * candidates))
  inputs.update(overrides)
  return inputs


def check(inputs, specs=SPECS):
  validation.check_request(specs, inputs, Limits(), TOY_FEATURES)


def rejected(inputs, match, specs=SPECS) -> ServingError:
  with pytest.raises(ServingError, match=match) as caught:
    check(inputs, specs)
  assert caught.value.code.name == "INVALID_ARGUMENT"
  return caught.value


def ingest_detail(feature, value) -> str:
  """What the ingest says of the value (its dead letter's detail)."""
  with pytest.raises(RowError) as caught:
    side_features.parse_value(BY_NAME[feature], value)
  return caught.value.detail


def test_good_values_and_missing_values_pass():
  check(feature_inputs())
  check(feature_inputs(segment=np.array(b"", dtype=object),
                       device=np.array(b"  ", dtype=object),
                       price=np.array([np.nan, 1e30], np.float32),
                       hist_price=np.full(3, np.nan, np.float32),
                       genres=strings("", "|a|")))
  check(feature_inputs(segment=np.array("\u5546".encode() * 300, dtype=object)))


@pytest.mark.parametrize("inputs, feature, value, where", [
    (dict(price=np.array([1.0, np.inf], np.float32)), "price", np.inf, r"price\[1\] = inf"),
    (dict(price=np.array([-np.inf, 1.0], np.float32)), "price", -np.inf, r"price\[0\] = -inf"),
    (dict(hist_price=np.array([1.0, 2.0, np.inf], np.float32)), "price", np.inf,
     r"hist_price\[2\] = inf"),
    (dict(segment=np.array(b"s\x01", dtype=object)), "segment", "s\x01",
     r"segment = 's\\x01'"),
    (dict(device=np.array(b"d" * 513, dtype=object)), "device", "d" * 513,
     r"device = 'ddd"),
    (dict(segment=np.array(b"\xff", dtype=object)), "segment", b"\xff", r"segment = b'\\xff'"),
    (dict(genres=strings("a|b", "ok|x\ty")), "genres", "x\ty", r"genres\[1\] = 'ok\|x\\ty'"),
])
def test_a_bad_value_is_refused_in_the_ingest_words(inputs, feature, value, where):
  error = rejected(feature_inputs(**inputs), where)
  assert error.message.endswith(ingest_detail(feature, value)), error.message


def test_item_features_are_parallel_to_the_candidates_and_the_history():
  rejected(feature_inputs(price=np.array([1.0], np.float32)),
           r"price has 1 values but item_ids has 2: item feature 'price' takes one value per "
           "candidate")
  rejected(feature_inputs(genres=strings("a", "b", "c")), "genres has 3 values but item_ids has 2")
  rejected(feature_inputs(hist_price=np.array([1.0], np.float32)),
           "hist_price has 1 values but hist_item_ids has 3: .* one value per behaviour")


def test_feature_inputs_keep_the_generic_checks():
  rejected(feature_inputs(segment=strings("s1")), r"input 'segment' must have shape \[\]")
  rejected(feature_inputs(price=np.array([1, 2], np.int32)), "input 'price' must be float32")
  inputs = feature_inputs()
  del inputs["device"]
  rejected(inputs, r"missing inputs \['device'\]")


def test_a_request_without_declared_features_is_as_before():
  validation.check_request(SPECS, feature_inputs(price=np.array([np.inf, 1], np.float32)),
                           Limits())  # no declaration: only dtype and shape are known


def _example(**changes):
  """The warm-up example of TOY_FEATURES (features missing, as the ingest writes them)
  with `changes`: {feature: (list kind, values)}; None deletes the feature."""
  example = tf.train.Example.FromString(warmup_example(TOY_FEATURES))
  feature_map = example.features.feature
  for name, change in changes.items():
    del feature_map[name]
    if change is not None:
      kind, values = change
      getattr(feature_map[name], kind).value.extend(values)
  return example.SerializeToString()


EXAMPLE_CASES = {
    "missing values": ({}, None),
    "values": (dict(segment=("bytes_list", [b"s1"]), price=("float_list", [2.5]),
                    genres=("bytes_list", [b"a", b"b"]), hist_price=("float_list", [1.0])),
               None),
    "bad number": (dict(price=("float_list", [float("inf")])),
                   r"examples\[0\].price: price inf is not a finite number"),
    "NaN number": (dict(hist_price=("float_list", [float("nan")])),
                   r"examples\[0\].hist_price: price nan is not a finite number"),
    "bad categorical": (dict(device=("bytes_list", [b"w\x00b"])),
                        r"examples\[0\].device\[0\] = 'w\\x00b': device value contains control"),
    "bad list value": (dict(genres=("bytes_list", [b"a", b"x" * 600])),
                       r"examples\[0\].genres\[1\] = 'xxx.*longer than 512"),
    "absent scalar": (dict(segment=None), r"examples\[0\].segment must hold exactly one value"),
    "two values": (dict(price=("float_list", [1.0, 2.0])), "must hold exactly one value"),
    "wrong list kind": (dict(price=("bytes_list", [b"1"])),
                        r"examples\[0\].price must be a float_list"),
    "history not parallel": (dict(hist_price=("float_list", [1.0, 2.0])),
                             "hist_price has 2 values but hist_item_ids has 1"),
    "indicator": (dict(price_missing=("int64_list", [2])),
                  "price_missing = 2: a missing indicator is 0 or 1"),
}


@pytest.mark.parametrize("what", sorted(EXAMPLE_CASES))
def test_examples_carry_the_features_as_the_ingest_writes_them(what):
  changes, match = EXAMPLE_CASES[what]
  inputs = {signatures.EXAMPLES: np.array([warmup_example(TOY_FEATURES), _example(**changes)],
                                          dtype=object)}
  if match is None:
    check(inputs, EXAMPLE_SPECS)
  else:
    rejected(inputs, match.replace("examples\\[0\\]", "examples\\[1\\]"), EXAMPLE_SPECS)
  # The whole-request check clears exactly what the example-by-example one clears.
  assert validation._examples_pass(inputs[signatures.EXAMPLES], Limits(), TOY_FEATURES) == (
      match is None)
