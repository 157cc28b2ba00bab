"""The synthetic log: deterministic, long histories, clicks driven by long-term interests."""

import collections

import numpy as np

from components import synth


def test_same_config_same_rows_and_seed_changes_them():
  config = synth.SynthConfig(events=2000, seed=3)
  assert list(synth.generate(config)) == list(synth.generate(config))
  assert list(synth.generate(config)) != list(synth.generate(synth.SynthConfig(events=2000,
                                                                               seed=4)))


def test_shape_of_the_log():
  config = synth.SynthConfig(events=60_000, mean_events_per_user=600, max_events_per_user=4000,
                             seed=1)
  rows = list(synth.generate(config))
  per_user = collections.Counter(row[0] for row in rows)
  assert len(rows) == config.events
  assert abs(len(per_user) - config.expected_users) < 0.3 * config.expected_users
  assert max(per_user.values()) >= 1000  # histories of thousands exist
  items = collections.Counter(row[1] for row in rows)
  counts = np.array(sorted(items.values(), reverse=True))
  assert counts[:len(counts) // 100].sum() > 0.1 * counts.sum()  # power-law popularity
  by_user = collections.defaultdict(list)
  for row in rows:
    by_user[row[0]].append(row)
  for user_rows in by_user.values():
    times = [row[3] for row in user_rows]
    assert times == sorted(times)


def test_clicks_depend_on_long_term_interests():
  # A user's most clicked categories over the whole log predict clicks on
  # events late in the log far better than chance.
  rows = list(synth.generate(synth.SynthConfig(events=40_000, mean_events_per_user=400, seed=2)))
  by_user = collections.defaultdict(list)
  for row in rows:
    by_user[row[0]].append(row)
  hits = [0, 0]  # clicks on (outside, inside) the user's early top categories
  shown = [0, 0]
  for user_rows in by_user.values():
    half = len(user_rows) // 2
    early = collections.Counter(r[2] for r in user_rows[:half] if r[4])
    top = {c for c, _ in early.most_common(6)}
    for row in user_rows[half:]:
      inside = row[2] in top
      shown[inside] += 1
      hits[inside] += row[4]
  ctr_inside, ctr_outside = hits[1] / shown[1], hits[0] / shown[0]
  assert ctr_inside > 2 * ctr_outside, (ctr_inside, ctr_outside)
