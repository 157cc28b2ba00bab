"""Point-in-time histories: strictly earlier, most recent first, capped, split by time."""

import json
import random
import tracemalloc

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


def test_per_user_split_is_a_chronological_suffix():
  user_events = _random_events(300, seed=1, duplicate_share=0)
  examples, _, stats = _run(user_events, IngestConfig(eval_fraction=0.2))
  n = len(examples)
  assert stats["examples"]["eval"] == round(0.2 * n)
  last_train = max(ex["timestamp"][0] for split, ex in examples if split == "train")
  first_eval = min(ex["timestamp"][0] for split, ex in examples if split == "eval")
  assert last_train <= first_eval
  eval_times = {ex["timestamp"][0] for split, ex in examples if split == "eval"}
  for split, ex in examples:
    if split == "train":  # training examples never see eval-period behaviour
      assert not set(ex["hist_timestamps"]) & (eval_times - {last_train})


def test_global_time_split():
  user_events = _random_events(200, seed=2, duplicate_share=0)
  examples, _, _ = _run(user_events, IngestConfig(split="global_time", eval_cutoff=150))
  for split, ex in examples:
    assert (split == "eval") == (ex["timestamp"][0] >= 150)
    if split == "train":
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
