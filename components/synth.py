"""`eta synth`: a deterministic generator of synthetic click logs, in the generic format.

The world it simulates is built so that reading far back pays:
  * items have power-law popularity and belong to categories;
  * each user has a few long-term interests (categories) revisited over months,
    in short sessions that each focus on one category;
  * a shown item is clicked with a probability that rises sharply when its
    category is one of the user's long-term interests, and only mildly when it
    matches the current session. The last few dozen events cover one or two
    interests; the long history reveals all of them.
The same SynthConfig always gives the same rows, byte for byte.
"""

import csv
import dataclasses
import json
import logging
import math
import os
from typing import Iterator, Tuple

import numpy as np

from components import events

log = logging.getLogger(__name__)

Row = Tuple[str, str, str, int, int]  # user_id, item_id, category, timestamp, label
COLUMNS = (events.USER_ID, events.ITEM_ID, events.CATEGORY, events.TIMESTAMP, events.LABEL)


@dataclasses.dataclass(frozen=True)
class SynthConfig:
  """Size and shape of the synthetic log.

  Attributes:
    events: total events (rows) written; users are added until it is reached.
    mean_events_per_user: mean of the log-normal events-per-user distribution.
    max_events_per_user: cap on one user's events (histories of thousands).
    items, categories: catalogue size.
    popularity_exponent: Zipf exponent of item popularity.
    interests_per_user: (min, max) long-term interest categories per user.
    session_length: mean events per session.
    interest_session_share: share of sessions that focus on a long-term interest.
    days: the time span of the log.
    seed: everything random derives from it.
  """
  events: int = 100_000
  mean_events_per_user: int = 200
  max_events_per_user: int = 5_000
  items: int = 20_000
  categories: int = 200
  popularity_exponent: float = 1.05
  interests_per_user: Tuple[int, int] = (3, 6)
  session_length: int = 8
  interest_session_share: float = 0.6
  days: int = 365
  start_time: int = 1_600_000_000
  seed: int = 0

  @property
  def expected_users(self) -> int:
    return max(1, int(round(self.events / self.mean_events_per_user)))


class _Catalogue:
  """Items with categories and popularity; draws items by popularity, within a category."""

  def __init__(self, config: SynthConfig, rng: np.random.Generator):
    self.categories = rng.integers(0, config.categories, size=config.items)
    ranks = rng.permutation(config.items) + 1
    self.popularity = 1.0 / ranks ** config.popularity_exponent
    self._global_cdf = np.cumsum(self.popularity) / self.popularity.sum()
    self._by_category = []
    for category in range(config.categories):
      members = np.flatnonzero(self.categories == category)
      if not len(members):  # an empty category falls back to the whole catalogue
        members = np.arange(config.items)
      weights = self.popularity[members]
      self._by_category.append((members, np.cumsum(weights) / weights.sum()))
    counts = np.bincount(self.categories, weights=self.popularity, minlength=config.categories)
    self.category_popularity = counts / counts.sum()

  def draw(self, rng, size, category=None):
    if category is None:
      return np.minimum(np.searchsorted(self._global_cdf, rng.random(size)),
                        len(self._global_cdf) - 1)
    members, cdf = self._by_category[category]
    return members[np.minimum(np.searchsorted(cdf, rng.random(size)), len(cdf) - 1)]


def generate(config: SynthConfig) -> Iterator[Row]:
  """Yields the log's rows, user by user, each user's in time order."""
  rng = np.random.default_rng(config.seed)
  catalogue = _Catalogue(config, rng)
  item_quality = rng.normal(0.0, 0.5, size=config.items)
  sigma = 1.0
  mu = math.log(config.mean_events_per_user) - sigma ** 2 / 2
  span = config.days * 86_400
  emitted, user = 0, 0
  while emitted < config.events:  # exactly `events` rows: the last user is cut short
    user_rng = np.random.default_rng([config.seed, user])
    for row in _user_rows(config, catalogue, item_quality, user_rng, user, mu, sigma, span):
      yield row
      emitted += 1
      if emitted == config.events:
        return
    user += 1


def _user_rows(config, catalogue, item_quality, rng, user, mu, sigma, span):
  n_events = int(np.clip(rng.lognormal(mu, sigma), 5, config.max_events_per_user))
  n_interests = rng.integers(config.interests_per_user[0], config.interests_per_user[1] + 1)
  interests = rng.choice(len(catalogue.category_popularity), size=n_interests, replace=False,
                         p=catalogue.category_popularity)
  interest_weights = rng.dirichlet(np.ones(n_interests))
  interest_set = set(interests.tolist())

  # Sessions spread over the span, in time order; events a few minutes apart.
  n_sessions = max(1, int(math.ceil(n_events / config.session_length)))
  session_starts = np.sort(rng.integers(0, span, size=n_sessions)) + config.start_time
  user_id = f"u{user}"
  emitted, last_time = 0, 0
  for session in range(n_sessions):
    size = min(n_events - emitted, max(1, rng.geometric(1.0 / config.session_length)))
    if size <= 0:
      break
    if rng.random() < config.interest_session_share:
      focus = int(interests[rng.choice(n_interests, p=interest_weights)])
    else:
      focus = int(rng.choice(len(catalogue.category_popularity),
                             p=catalogue.category_popularity))
    from_focus = rng.random(size) < 0.7
    items = np.where(from_focus, catalogue.draw(rng, size, focus), catalogue.draw(rng, size))
    categories = catalogue.categories[items]
    in_interests = np.fromiter((c in interest_set for c in categories.tolist()), bool, size)
    logits = (-2.2 + 2.6 * in_interests + 0.5 * (categories == focus) + item_quality[items])
    labels = rng.random(size) < 1.0 / (1.0 + np.exp(-logits))
    # A session that would overlap the previous one starts right after it.
    start = max(int(session_starts[session]), last_time + 600)
    times = start + np.cumsum(rng.integers(5, 300, size=size))
    last_time = int(times[-1])
    for item, category, timestamp, label in zip(items.tolist(), categories.tolist(),
                                                times.tolist(), labels.tolist()):
      yield user_id, f"i{item}", f"c{category}", int(timestamp), int(label)
    emitted += size


def _write_csv(rows, path: str) -> int:
  count = 0
  with open(path, "w", newline="") as handle:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
      writer.writerow(row)
      count += 1
  return count


def _write_jsonl(rows, path: str) -> int:
  count = 0
  with open(path, "w") as handle:
    for row in rows:
      handle.write(json.dumps(dict(zip(COLUMNS, row))) + "\n")
      count += 1
  return count


def _write_parquet(rows, path: str) -> int:
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  columns = list(zip(*rows)) or [[]] * len(COLUMNS)
  table = pa.table({name: list(values) for name, values in zip(COLUMNS, columns)})
  pq.write_table(table, path)
  return table.num_rows


# The generic-table formats of components.formats that synth writes.
WRITERS = {"csv": _write_csv, "jsonl": _write_jsonl, "parquet": _write_parquet}


def write(config: SynthConfig, path: str, fmt: str = "csv") -> int:
  """Writes the log to `path` in one of WRITERS' formats; returns the row count.

  Raises:
    ValueError: an unknown format.
  """
  if fmt not in WRITERS:
    raise ValueError(f"unknown format {fmt!r}; expected one of {tuple(WRITERS)}")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  log.info("synth: about %d users, %d events -> %s (%s)", config.expected_users,
           config.events, path, fmt)
  count = WRITERS[fmt](generate(config), path)
  log.info("synth: wrote %d rows", count)
  return count
