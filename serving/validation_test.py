"""Request validation: generic spec checks and the ETA rules, each with its message."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from components.events import RowError
from models import signatures
from serving import validation
from serving.errors import ServingError
from serving.limits import Limits
from serving.warmup import warmup_example

SCORE_SPECS = {
    signatures.HIST_ITEM_IDS: tf.TensorSpec([None], tf.string),
    signatures.HIST_CATEGORIES: tf.TensorSpec([None], tf.string),
    signatures.HIST_TIMESTAMPS: tf.TensorSpec([None], tf.int64),
    signatures.ITEM_IDS: tf.TensorSpec([None], tf.string),
    signatures.CATEGORIES: tf.TensorSpec([None], tf.string),
    signatures.REQUEST_TIME: tf.TensorSpec([], tf.int64),
}
EXAMPLE_SPECS = {signatures.EXAMPLES: tf.TensorSpec([None], tf.string)}


def strings(*values):
  array = np.empty(len(values), dtype=object)
  array[:] = [v.encode() for v in values]
  return array


def score_inputs(history=3, candidates=2, **overrides):
  inputs = {
      signatures.HIST_ITEM_IDS: strings(*[f"h{i}" for i in range(history)]),
      signatures.HIST_CATEGORIES: strings(*["c"] * history),
      signatures.HIST_TIMESTAMPS: np.arange(100, 100 - history, -1, dtype=np.int64),
      signatures.ITEM_IDS: strings(*[f"i{i}" for i in range(candidates)]),
      signatures.CATEGORIES: strings(*["c"] * candidates),
      signatures.REQUEST_TIME: np.array(200, np.int64),
  }
  inputs.update(overrides)
  return inputs


def check(inputs, specs=SCORE_SPECS, limits=Limits()):
  validation.check_request(specs, inputs, limits)


def rejected(inputs, match, specs=SCORE_SPECS, limits=Limits()):
  with pytest.raises(ServingError, match=match) as caught:
    check(inputs, specs, limits)
  assert caught.value.code.name == "INVALID_ARGUMENT"
  return caught.value


def test_a_good_score_request_passes_and_unknown_ids_are_valid():
  check(score_inputs())
  check(score_inputs(**{signatures.ITEM_IDS: strings("never-seen", "nor-this")}))


def test_missing_and_extra_inputs_are_named():
  inputs = score_inputs()
  del inputs[signatures.CATEGORIES]
  inputs["user"] = strings("u")
  rejected(inputs, r"missing inputs \['categories'\] and unexpected inputs \['user'\]")


def test_dtype_and_rank_must_match_the_spec():
  rejected(score_inputs(**{signatures.REQUEST_TIME: np.array(5, np.int32)}),
           "request_time' must be int64, got int32")
  rejected(score_inputs(**{signatures.HIST_TIMESTAMPS: strings("1", "2", "3")}),
           "hist_timestamps' must be int64, got string")
  rejected(score_inputs(**{signatures.ITEM_IDS: np.array([1, 2], np.int64)}),
           "item_ids' must be string, got int64")
  rejected(score_inputs(**{signatures.REQUEST_TIME: np.array([5], np.int64)}),
           r"request_time' must have shape \[\] \(rank 0\), got shape \[1\]")
  rejected(score_inputs(**{signatures.ITEM_IDS: strings("a", "b").reshape(1, 2)}),
           r"item_ids' must have shape \[\?\] \(rank 1\), got shape \[1, 2\]")


def test_history_and_candidate_lengths_must_agree():
  rejected(score_inputs(**{signatures.HIST_CATEGORIES: strings("c", "c")}),
           "history inputs must have the same length, got hist_item_ids=3, "
           "hist_categories=2, hist_timestamps=3")
  rejected(score_inputs(**{signatures.CATEGORIES: strings("c")}),
           "candidate inputs must have the same length, got item_ids=2, categories=1")


def test_empty_history_is_refused_unless_allowed():
  empty = score_inputs(history=0)
  rejected(empty, "the history is empty")
  check(empty, limits=Limits(allow_empty_history=True))


def test_no_candidates_is_refused():
  rejected(score_inputs(candidates=0), "no candidates: item_ids is empty")


def test_limits():
  limits = Limits(max_candidates=2, max_history=3)
  check(score_inputs(history=3, candidates=2), limits=limits)
  rejected(score_inputs(history=4), r"4 behaviours, more than this server's limit of 3 "
           r"\(--max-history\)", limits=limits)
  rejected(score_inputs(candidates=3), r"3 candidates, more than this server's limit of 2",
           limits=limits)
  batch = np.array([warmup_example()] * 3, dtype=object)
  rejected({signatures.EXAMPLES: batch}, "batch of 3", EXAMPLE_SPECS, limits)


def test_ids_and_times_must_be_real():
  rejected(score_inputs(**{signatures.ITEM_IDS: strings("ok", "")}),
           r"item_ids\[1\] is empty")
  rejected(score_inputs(**{signatures.HIST_ITEM_IDS: strings("a", "b", "x" * 600)}),
           r"hist_item_ids\[2\] is longer than 512 characters \(600\)")
  rejected(score_inputs(**{signatures.CATEGORIES: strings("c", "c\x07")}),
           r"categories\[1\] contains control characters")
  rejected(score_inputs(**{signatures.ITEM_IDS: strings(" i1", "i2")}),
           r"item_ids\[0\] has leading or trailing whitespace")
  latin1 = np.array([b"\xe9t\xe9", b"i2"], dtype=object)
  rejected(score_inputs(**{signatures.ITEM_IDS: latin1}), r"item_ids\[0\] is not UTF-8 text")
  rejected(score_inputs(**{signatures.REQUEST_TIME: np.array(1_600_000_000_000, np.int64)}),
           "milliseconds")
  rejected(score_inputs(**{signatures.HIST_TIMESTAMPS: np.array([90, 95, 80], np.int64)}),
           r"most recent first, but \[0\]=90 is earlier than \[1\]=95")
  rejected(score_inputs(**{signatures.HIST_TIMESTAMPS: np.array([300, 95, 80], np.int64)}),
           r"hist_timestamps\[0\]=300 is not before request_time=200")
  # Same second as the request: never history at ingest, so refused here too.
  rejected(score_inputs(**{signatures.HIST_TIMESTAMPS: np.array([200, 95, 80], np.int64)}),
           r"hist_timestamps\[0\]=200 is not before request_time=200")


def test_ingest_and_server_apply_one_id_rule():
  """A 300-character CJK id (900 bytes of UTF-8) is a valid id at ingest, and so
  for `score` too; 513 characters are refused by both, in the same words."""
  from components import parsing
  cjk = "\u5546" * 300
  assert len(cjk.encode("utf-8")) == 900 and parsing.parse_id(cjk, "item_id") == cjk
  check(score_inputs(candidates=1, **{signatures.ITEM_IDS: strings(cjk)}))
  too_long = "\u5546" * 513
  with pytest.raises(RowError) as ingest_error:
    parsing.parse_id(too_long, "item_id")
  served = rejected(score_inputs(candidates=1, **{signatures.ITEM_IDS: strings(too_long)}),
                    "longer than 512 characters")
  assert ingest_error.value.detail.split("item_id ", 1)[1] in served.message
  rejected(score_inputs(**{signatures.HIST_TIMESTAMPS: np.array([90, 80, -1], np.int64)}),
           "negative")


def test_examples_must_parse_and_carry_a_consistent_history():
  good = warmup_example()
  check({signatures.EXAMPLES: np.array([good, good], dtype=object)}, EXAMPLE_SPECS)
  rejected({signatures.EXAMPLES: np.array([good, b"\xff\x00garbage"], dtype=object)},
           r"examples\[1\] is not a serialized tf.Example", EXAMPLE_SPECS)
  example = tf.train.Example.FromString(good)
  example.features.feature[signatures.HIST_CATEGORIES].bytes_list.value.append(b"extra")
  rejected({signatures.EXAMPLES: np.array([example.SerializeToString()], dtype=object)},
           r"examples\[0\]: history inputs must have the same length", EXAMPLE_SPECS)
  cold = tf.train.Example.FromString(good)
  for name in signatures.HISTORY_INPUTS:
    del cold.features.feature[name]
  check({signatures.EXAMPLES: np.array([cold.SerializeToString()], dtype=object)}, EXAMPLE_SPECS)


def test_garbage_is_refused_without_a_warning_or_a_process_wide_filter():
  before = list(warnings.filters)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    example = tf.train.Example()
    assert validation.parse_whole(example, b"\x00garbage") < len(b"\x00garbage")
    rejected({signatures.EXAMPLES: np.array([b"\x00garbage"], dtype=object)},
             "parses only", EXAMPLE_SPECS)
  assert not [w for w in caught if "end-group" in str(w.message)]
  assert warnings.filters == before
  assert not any(f[1] is not None and "end-group" in f[1].pattern for f in warnings.filters)


def test_ids_seen_before_skip_the_rule_but_a_bad_one_is_still_named():
  """The known-id cache only ever holds ids that passed the rule: a request mixing
  them with a bad one is refused with the bad one's index, as without the cache."""
  cached = strings(*[f"seen{i}" for i in range(5)])
  check(score_inputs(history=5, **{signatures.HIST_ITEM_IDS: cached}))
  assert validation._KNOWN_IDS.unseen(cached.tolist()) == set()
  mixed = strings("seen0", "seen1", "bad\x01", "seen3", "new")
  rejected(score_inputs(history=5, **{signatures.HIST_ITEM_IDS: mixed}),
           r"hist_item_ids\[2\] contains control characters")
  assert b"bad\x01" in validation._KNOWN_IDS.unseen([b"bad\x01"])
  rejected(score_inputs(history=5, **{signatures.HIST_ITEM_IDS: mixed}),
           r"hist_item_ids\[2\] contains control characters")  # still refused
  small = validation._KnownIds(capacity=3)
  small.add({b"a", b"b"})
  small.add({b"c", b"d"})  # over capacity: starts again rather than growing
  assert small.unseen([b"a", b"c", b"d"]) == {b"a"}


def _example(items=("h1", "h2"), categories=None, times=(90, 80), timestamp=(100,), **extra):
  example = tf.train.Example()
  features = example.features.feature
  for name, value in ((signatures.USER_ID, b"u"), (signatures.ITEM_ID, b"i"),
                      (signatures.CATEGORY, b"c")):
    features[name].bytes_list.value.append(value)
  if timestamp is not None:
    features[signatures.TIMESTAMP].int64_list.value.extend(timestamp)
  if items is not None:
    features[signatures.HIST_ITEM_IDS].bytes_list.value.extend(v.encode() for v in items)
    features[signatures.HIST_CATEGORIES].bytes_list.value.extend(
        v.encode() for v in (categories if categories is not None else ["c"] * len(items)))
  if times is not None:
    features[signatures.HIST_TIMESTAMPS].int64_list.value.extend(times)
  for name, values in extra.items():
    features[name].bytes_list.value.extend(values)
  return example.SerializeToString()


def test_the_whole_request_check_clears_exactly_what_the_example_by_example_check_clears():
  """_examples_pass (TensorFlow's parser, distinct ids once, vectorised history checks)
  may only say yes where the per-example reader finds nothing wrong."""
  cases = {
      "good": [_example(), _example(items=("h3",), times=(95,))],
      "cold start": [_example(items=None, times=None)],
      "present but empty": [_example(items=(), times=())],
      "bad id": [_example(), _example(items=("ok", "bad\x01"))],
      "empty id": [_example(items=("",), times=(50,))],
      "lengths differ": [_example(categories=("c",))],
      "times missing": [_example(times=None)],
      "rising times": [_example(times=(80, 90))],
      "rising across examples only": [_example(times=(90, 80)), _example(times=(95, 85))],
      "not before the event": [_example(times=(100, 80))],
      "two event times": [_example(times=(100, 80), timestamp=(100, 200))],
      "milliseconds": [_example(times=(10**12, 80), timestamp=(2 * 10**12,))],
      "negative": [_example(times=(5, -1))],
      "too long": [_example(items=["h"] * 5, times=range(100, 95, -1))],
      "not an example": [b"\xff\x00garbage"],
      "stray end-group tag": [b"\x00garbage"],
      "wrong feature type": [tf.train.Example(features=tf.train.Features(feature={
          signatures.HIST_ITEM_IDS: tf.train.Feature(int64_list=tf.train.Int64List(
              value=[1]))})).SerializeToString()],
  }
  # What the whole-request check clears itself; the reader has the last word on the rest.
  fast = {"good", "cold start", "present but empty", "rising across examples only",
          "two event times"}
  cleared = fast | {"times missing", "wrong feature type"}  # (the model refuses the last)
  limits = Limits(max_history=4)
  for what, examples in cases.items():
    serialized = np.array(examples, dtype=object)
    try:
      validation._check_each_example(serialized, limits)
      reader_clears = True
    except ServingError:
      reader_clears = False
    assert reader_clears == (what in cleared), what
    assert validation._examples_pass(serialized, limits) == (what in fast), what
