"""Point-in-time histories: strictly earlier, most recent first, capped, split by time."""

import json
import random
import tracemalloc

import pytest

from components import events, histories
from components.events import Event
from components.example_io import example_to_dict
from components.negatives import NegativeSampler
from eta_ctr.config import IngestConfig


def _random_events(n, seed=0, n_items=30, span=200, duplicate_share=0.05):
  rng = random.Random(seed)
  out = []
  for _ in range(n):
    if out and rng.random() < duplicate_share:
      out.append(rng.choice(out))  # an exact duplicate
      continue
    item = rng.randrange(n_items)
    # A small time span forces many timestamp ties.
    out.append(Event("u", f"i{item}", f"c{item % 4}", rng.randrange(span),
                     int(rng.random() < 0.4), raw=f"row{len(out)}"))
  rng.shuffle(out)
  return out


def _run(user_events, config, sampler=None):
  outputs = list(histories.build_user_examples("u", user_events, config, sampler))
  examples = [(split, example_to_dict(data)) for kind, (split, data) in
              ((k, p) for k, p in outputs if k == histories.EXAMPLE)]
  dead = [p for k, p in outputs if k == histories.DEAD_LETTER]
  stats = [p for k, p in outputs if k == histories.STATS]
  assert len(stats) == 1
  return examples, dead, stats[0]


def _reference_history(unique_events, timestamp, cap, include_non_clicked=False):
  """Brute force: the earlier behaviours, most recent first (ties by reversed key)."""
  earlier = [e for e in unique_events if e.timestamp < timestamp
             and (e.label == 1 or include_non_clicked)]
  earlier.sort(key=Event.key, reverse=True)
  return earlier[:cap]


def test_histories_are_strictly_earlier_sorted_and_match_brute_force():
  user_events = _random_events(400)
  config = IngestConfig(max_history=25)
  examples, dead, stats = _run(user_events, config)
  unique = sorted(set((e.timestamp, e.item_id, e.category, e.label) for e in user_events))
  unique_events = [Event("u", i, c, t, l) for t, i, c, l in unique]
  assert len(examples) == len(unique_events) == stats["rows_valid"]
  assert len(dead) == len(user_events) - len(unique_events)
  assert all(d["reason"] == events.DUPLICATE and d["row"].startswith("row") for d in dead)
  for _, ex in examples:
    ts = ex["timestamp"][0]
    hist_ts = ex["hist_timestamps"]
    assert all(t < ts for t in hist_ts), "history must be strictly earlier (ties excluded)"
    assert hist_ts == sorted(hist_ts, reverse=True), "most recent first"
    expected = _reference_history(unique_events, ts, config.max_history)
    assert ex["hist_item_ids"] == [e.item_id for e in expected]
    assert ex["hist_categories"] == [e.category for e in expected]
    assert hist_ts == [e.timestamp for e in expected]
    assert len(ex["hist_item_ids"]) <= config.max_history


def test_non_clicked_history_flag_adds_labels():
  user_events = _random_events(120, seed=3, duplicate_share=0)
  examples, _, _ = _run(user_events, IngestConfig(history_includes_non_clicked=True))
  unique_events = sorted(set(e._replace(raw="") for e in user_events), key=Event.key)
  for _, ex in examples:
    expected = _reference_history(unique_events, ex["timestamp"][0], 1024, True)
    assert ex["hist_labels"] == [e.label for e in expected]
    assert 0 in ex["hist_labels"] or not ex["hist_labels"] or all(ex["hist_labels"])


def _in_time_order(examples):
  """The examples' splits in the order the user's sorted events produced them."""
  return [split for split, _ in examples]


def test_per_user_split_is_train_then_valid_then_eval_in_time():
  user_events = _random_events(300, seed=1, duplicate_share=0)
  examples, _, stats = _run(user_events, IngestConfig(eval_fraction=0.2, valid_fraction=0.1))
  n = len(examples)
  n_eval = round(0.2 * n)
  n_valid = round(0.1 * (n - n_eval))  # of the train period, not of all events
  assert (stats["examples"]["eval"], stats["examples"]["valid"]) == (n_eval, n_valid)
  assert stats["examples"]["train"] == n - n_eval - n_valid
  # Exactly the last n_valid events before the eval suffix, the eval suffix last.
  assert _in_time_order(examples) == (["train"] * (n - n_eval - n_valid) + ["valid"] * n_valid
                                      + ["eval"] * n_eval)
  times = {split: [ex["timestamp"][0] for s, ex in examples if s == split]
           for split in events.SPLITS}
  assert max(times["train"]) <= min(times["valid"]) <= max(times["valid"]) <= min(
      times["eval"])
  for split, ex in examples:  # a history is strictly earlier, whatever the split
    assert all(t < ex["timestamp"][0] for t in ex["hist_timestamps"])
    if split != "eval":  # no eval-period event in a train or valid example's history
      assert all(t < min(times["eval"]) for t in ex["hist_timestamps"])
    if split == "train":  # nor a valid-period one in a train example's
      assert all(t < min(times["valid"]) for t in ex["hist_timestamps"])


@pytest.mark.parametrize("n", range(0, 41))
def test_valid_is_the_last_tenth_of_the_train_period_by_the_eval_rounding(n):
  config = IngestConfig(eval_fraction=0.2, valid_fraction=0.1)
  splits = histories.assign_splits(list(range(n)), config)
  n_eval = histories.suffix_size(n, 0.2)
  n_valid = histories.suffix_size(n - n_eval, 0.1)
  assert splits == (["train"] * (n - n_eval - n_valid) + ["valid"] * n_valid
                    + ["eval"] * n_eval)
  assert n_valid == (0 if n - n_eval < 5 else max(1, round((n - n_eval) / 10 + 1e-9)))
  no_valid = histories.assign_splits(list(range(n)), IngestConfig(valid_fraction=0))
  assert no_valid == ["train"] * (n - n_eval) + ["eval"] * n_eval  # as before valid existed


def test_global_time_split_takes_valid_per_user_within_the_train_period():
  user_events = _random_events(200, seed=2, duplicate_share=0)
  config = IngestConfig(split="global_time", eval_cutoff=150, valid_fraction=0.1)
  examples, _, stats = _run(user_events, config)
  train_period = [ex for split, ex in examples if split != "eval"]
  n_valid = round(0.1 * len(train_period))
  assert stats["examples"]["valid"] == n_valid > 0
  assert _in_time_order(examples)[len(train_period) - n_valid:len(train_period)] == (
      ["valid"] * n_valid)
  for split, ex in examples:
    assert (split == "eval") == (ex["timestamp"][0] >= 150)
    if split != "eval":
      assert all(t < 150 for t in ex["hist_timestamps"])


def test_negative_sampling_adds_unclicked_items_with_same_history():
  user_events = [Event("u", f"i{k}", "c0", 10 * k, 1) for k in range(5)]
  catalogue = [(f"i{k}", "c0") for k in range(10)] + [(f"j{k}", "c1") for k in range(50)]
  sampler = NegativeSampler(catalogue, negatives_per_positive=3, seed=7)
  examples, _, stats = _run(user_events, IngestConfig(negatives_per_positive=3), sampler)
  assert stats["negatives_sampled"] == 15 and len(examples) == 20
  clicked = {e.item_id for e in user_events}
  by_time = {}
  for _, ex in examples:
    by_time.setdefault(ex["timestamp"][0], []).append(ex)
  for group in by_time.values():
    positives = [ex for ex in group if ex["label"] == [1]]
    negatives = [ex for ex in group if ex["label"] == [0]]
    assert len(positives) == 1 and len(negatives) == 3
    for ex in negatives:
      assert ex["item_id"][0] not in clicked
      assert ex["category"] == ["c0"]  # the category has 5 unclicked items: enough
      assert ex["hist_item_ids"] == positives[0]["hist_item_ids"]
  # Sampled negatives never enter the history.
  assert all(item in clicked for _, ex in examples for item in ex["hist_item_ids"])
  again, _, _ = _run(list(reversed(user_events)), IngestConfig(negatives_per_positive=3),
                     sampler)
  canonical = lambda exs: sorted(json.dumps(e, sort_keys=True) for e in exs)
  assert canonical(again) == canonical(examples)  # independent of input order


def test_memory_per_user_is_not_events_times_history():
  n, cap = 8_000, 1024
  user_events = [Event("u", f"i{k % 5000}", "c", k, 1) for k in range(n)]
  config = IngestConfig(max_history=cap)
  tracemalloc.start()
  count = 0
  for kind, _ in histories.build_user_examples("u", user_events, config):
    count += kind == histories.EXAMPLE
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert count == n
  # Materialising every history would need > n * cap * 8 bytes = 65 MB.
  assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB"
