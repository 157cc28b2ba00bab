"""Point-in-time behaviour histories: one user's events -> one tf.Example per event.

For each event the history holds the user's positive events *strictly earlier*
than it (events sharing its timestamp are excluded), most recent first, capped at
`max_history`. The split is chronological (`assign_splits`): each user's events
in time order are train, then valid, then eval, so a training example never sees
a valid- or eval-period behaviour; later splits may see earlier ones.

Cost: one sort per user; the output is streamed, and the only state besides the
user's event list is a window of `max_history` behaviours, so memory per user is
O(events + max_history), never O(events x max_history).

Declared side features (components/side_features.py) go onto every example
under their names; an item feature with in_history also gets hist_NAME, each
behaviour's value from that behaviour's own row (the point-in-time rule).
"""

import collections
import itertools
import math
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from tensorflow.core.example import example_pb2

from components import events, side_features
from components.events import Event
from components.negatives import NegativeSampler
from eta_ctr.config import IngestConfig

# Kinds of the (kind, payload) items `build_user_examples` yields.
EXAMPLE = "example"          # payload: (split, serialized tf.Example)
DEAD_LETTER = "dead_letter"  # payload: dead-letter record dict
STATS = "stats"              # payload: nested dict of counts, one per user
# Keys of stats[SPLIT_USERS]: 1 for a user who is such a case, else 0.
SPLIT_USERS = "split_users"
FEWER_THAN_2_EVENTS = "fewer_than_2_events"  # can never be in both splits per user
NO_EVAL_EVENTS = "no_eval_events"            # no event of the user is in eval
NO_TRAIN_EVENTS = "no_train_events"          # no event of the user is in train
NO_VALID_EVENTS = "no_valid_events"          # none in valid (counted with a valid split)
# stats[SIDE_FEATURES] (only with declared features): {MISSING_VALUES: {feature:
# valid rows whose value was missing}, EXAMPLE_BYTES: serialized bytes of all
# examples, EXAMPLE_BYTES_WITHOUT_HISTORY: the same without the hist_NAME lists}.
SIDE_FEATURES = "side_features"
# stats[IGNORED_COLUMNS] (from the parse step, components/ingest.py): {column of
# the log neither built-in nor declared: {file: n}}; the report gives each such
# column's number of files.
IGNORED_COLUMNS = "ignored_columns"
MISSING_VALUES = "missing_values"
EXAMPLE_BYTES = "example_bytes"
EXAMPLE_BYTES_WITHOUT_HISTORY = "example_bytes_without_history_features"


def make_example(user_id: bytes, item_id: bytes, category: bytes, timestamp: int,
                 label: int, hist_items: List[bytes], hist_categories: List[bytes],
                 hist_timestamps: List[int],
                 hist_labels: Optional[List[int]] = None) -> bytes:
  """The serialized tf.Example of one event with its history."""
  return _example(user_id, item_id, category, timestamp, label, hist_items, hist_categories,
                  hist_timestamps, hist_labels).SerializeToString(deterministic=True)


def _example(user_id: bytes, item_id: bytes, category: bytes, timestamp: int,
             label: int, hist_items: List[bytes], hist_categories: List[bytes],
             hist_timestamps: List[int],
             hist_labels: Optional[List[int]] = None) -> example_pb2.Example:
  example = example_pb2.Example()
  feature = example.features.feature
  feature[events.USER_ID].bytes_list.value.append(user_id)
  feature[events.ITEM_ID].bytes_list.value.append(item_id)
  feature[events.CATEGORY].bytes_list.value.append(category)
  feature[events.TIMESTAMP].int64_list.value.append(timestamp)
  feature[events.LABEL].int64_list.value.append(label)
  feature[events.HIST_ITEM_IDS].bytes_list.value.extend(hist_items)
  feature[events.HIST_CATEGORIES].bytes_list.value.extend(hist_categories)
  feature[events.HIST_TIMESTAMPS].int64_list.value.extend(hist_timestamps)
  if hist_labels is not None:
    feature[events.HIST_LABELS].int64_list.value.extend(hist_labels)
  return example


def suffix_size(n: int, fraction: float) -> int:
  """How many of n events the last `fraction` of them is: n * fraction rounded
  half up (the rule of both the eval and the valid split)."""
  return int(math.floor(n * fraction + 0.5))


def assign_splits(timestamps: List[int], config: IngestConfig) -> List[str]:
  """The split of each event of one user's chronologically sorted events.

  eval: the last `eval_fraction` of the events (per_user), or those at or after
  `eval_cutoff` (global_time). The rest is the train period, a prefix in time;
  its last `valid_fraction` (same rounding, either split mode) is valid, the
  events before that train. So every train event is at or before every valid
  event, which is at or before every eval event.

  Returns:
    one of events.SPLIT_TRAIN / SPLIT_VALID / SPLIT_EVAL per timestamp.
  """
  n = len(timestamps)
  if config.split == "global_time":
    n_train_period = sum(1 for ts in timestamps if ts < config.eval_cutoff)
  else:
    n_train_period = n - suffix_size(n, config.eval_fraction)
  n_train = n_train_period - suffix_size(n_train_period, config.valid_fraction)
  return [events.SPLIT_TRAIN if i < n_train else
          events.SPLIT_VALID if i < n_train_period else events.SPLIT_EVAL
          for i in range(n)]


class _HistoryWindow:
  """The last `capacity` behaviours, kept as encoded columns for cheap copies
  (plus one column per in_history side feature)."""

  def __init__(self, capacity: int, with_labels: bool, side_columns: int = 0):
    self.items = collections.deque(maxlen=capacity)
    self.categories = collections.deque(maxlen=capacity)
    self.timestamps = collections.deque(maxlen=capacity)
    self.labels = collections.deque(maxlen=capacity) if with_labels else None
    self.side = [collections.deque(maxlen=capacity) for _ in range(side_columns)]

  def append(self, item: bytes, category: bytes, timestamp: int, label: int,
             side: Sequence[Any] = ()):
    self.items.append(item)
    self.categories.append(category)
    self.timestamps.append(timestamp)
    if self.labels is not None:
      self.labels.append(label)
    for column, value in zip(self.side, side):
      column.append(value)

  def most_recent_first(self):
    return (list(reversed(self.items)), list(reversed(self.categories)),
            list(reversed(self.timestamps)),
            None if self.labels is None else list(reversed(self.labels)))

  def side_most_recent_first(self) -> List[List[Any]]:
    return [list(reversed(column)) for column in self.side]

  def __len__(self):
    return len(self.items)


def build_user_examples(user_id: str, user_events: Iterable[Event], config: IngestConfig,
                        sampler: Optional[NegativeSampler] = None,
                        features: Sequence[Any] = (),
                        item_attributes: Optional[Dict[str, Tuple[Any, ...]]] = None
                       ) -> Iterator[Tuple[str, object]]:
  """Yields (kind, payload) for one user: examples, duplicate dead letters, stats.

  Args:
    user_id: the user.
    user_events: all of the user's valid events, in any order.
    config: the ingest settings.
    sampler: draws negatives per positive when config.negatives_per_positive > 0.
    features: the declared side features (FeatureSpecs); each event's `side`
      holds their values. Without any, the examples and stats are exactly those
      of a log without side features.
    item_attributes: {item_id: its item features' values (side_features.
      item_values)} for sampled negatives: the values of the item's earliest row.
  """
  features = tuple(features)
  # Sorting by the full event key makes ties (same timestamp) deterministic and
  # puts exact duplicates next to each other.
  ordered = sorted(user_events, key=Event.key)
  stats = {"rows_valid": 0, "negatives_sampled": 0, "users": 1,
           "examples": {split: 0 for split in events.SPLITS},
           "rejected": {}, "history_length": {}}

  duplicate_detail = ("same user, item, category, timestamp and label as an earlier row"
                      if not features else "same user, item, category, timestamp, label "
                      "and side-feature values as an earlier row")
  unique: List[Event] = []
  for event in ordered:
    if unique and unique[-1].key() == event.key():
      stats["rejected"][events.DUPLICATE] = stats["rejected"].get(events.DUPLICATE, 0) + 1
      yield DEAD_LETTER, events.dead_letter_record(event.raw, events.DUPLICATE,
                                                   duplicate_detail, event.origin)
    else:
      unique.append(event)
  del ordered
  stats["rows_valid"] = len(unique)

  splits = assign_splits([e.timestamp for e in unique], config)
  present = set(splits)
  # Users the split cannot serve: summed over users into the report's split_users.
  stats[SPLIT_USERS] = {FEWER_THAN_2_EVENTS: int(len(unique) < 2),
                        NO_EVAL_EVENTS: int(events.SPLIT_EVAL not in present),
                        NO_TRAIN_EVENTS: int(events.SPLIT_TRAIN not in present),
                        NO_VALID_EVENTS: int(config.valid_fraction > 0
                                             and events.SPLIT_VALID not in present)}
  side = _SideFeatures(features, item_attributes, unique) if features else None
  if side is not None:
    stats[SIDE_FEATURES] = side.stats
  clicked: Set[str] = ({e.item_id for e in unique if e.label == 1}
                       if sampler is not None else set())
  window = _HistoryWindow(config.max_history, config.history_includes_non_clicked,
                          len(side.history) if side is not None else 0)
  user_bytes = user_id.encode("utf-8")
  lengths = stats["history_length"]

  position = 0
  for timestamp, group in itertools.groupby(unique, key=lambda e: e.timestamp):
    group = list(group)
    hist_items, hist_categories, hist_timestamps, hist_labels = window.most_recent_first()
    hist_side = window.side_most_recent_first()
    for event in group:
      split = splits[position]
      position += 1
      candidates = [(event.item_id, event.category, event.label, event.side)]
      if sampler is not None and event.label == 1:
        negatives = sampler.sample(user_id, event.item_id, event.category, timestamp, clicked)
        stats["negatives_sampled"] += len(negatives)
        candidates += [(item, category, 0,
                        side.of_negative(event.side, item) if side is not None else ())
                       for item, category in negatives]
      for item, category, label, values in candidates:
        stats["examples"][split] += 1
        lengths[len(hist_items)] = lengths.get(len(hist_items), 0) + 1
        example = _example(user_bytes, item.encode("utf-8"), category.encode("utf-8"),
                           timestamp, label, hist_items, hist_categories, hist_timestamps,
                           hist_labels)
        if side is not None:
          serialized = side.add(example, values, hist_side)
        else:
          serialized = example.SerializeToString(deterministic=True)
        yield EXAMPLE, (split, serialized)
    # Only now, after every event of this timestamp has its example, do this
    # timestamp's behaviours become history: ties are never each other's history.
    for event in group:
      if event.label == 1 or config.history_includes_non_clicked:
        window.append(event.item_id.encode("utf-8"), event.category.encode("utf-8"),
                      event.timestamp, event.label,
                      side.history_values(event) if side is not None else ())
  yield STATS, stats


class _SideFeatures:
  """The declared side features of one user's examples, and their stats."""

  def __init__(self, features: Tuple[Any, ...],
               item_attributes: Optional[Dict[str, Tuple[Any, ...]]], unique: List[Event]):
    self.features = features
    self.item_attributes = item_attributes or {}
    self.item_positions = [i for i, spec in enumerate(features)
                           if spec.entity == side_features.ITEM]
    self.history = side_features.history_specs(features)
    self.history_positions = [features.index(spec) for spec in self.history]
    missing = {spec.name: 0 for spec in features}
    for event in unique:
      for spec, value in zip(features, event.side):
        missing[spec.name] += int(side_features.is_missing_value(spec, value))
    self.stats = {MISSING_VALUES: missing, EXAMPLE_BYTES: 0}
    if self.history:
      self.stats[EXAMPLE_BYTES_WITHOUT_HISTORY] = 0

  def of_negative(self, values: Sequence[Any], item: str) -> List[Any]:
    """A positive's values with a sampled negative item's own item features."""
    values = list(values)
    attributes = self.item_attributes.get(item)
    for n, position in enumerate(self.item_positions):
      values[position] = (attributes[n] if attributes is not None
                          else side_features.missing_value(self.features[position]))
    return values

  def history_values(self, event: Event) -> List[Any]:
    """What the history keeps of a behaviour: its own row's in_history values."""
    return [side_features.example_value(self.features[p], event.side[p])
            for p in self.history_positions]

  def add(self, example: example_pb2.Example, values: Sequence[Any],
          hist_side: List[List[Any]]) -> bytes:
    """Adds the features (and hist_NAME lists) to `example`; returns it serialized."""
    feature = example.features.feature
    side_features.add_to_example(feature, self.features, values)
    if self.history:
      self.stats[EXAMPLE_BYTES_WITHOUT_HISTORY] += example.ByteSize()
      side_features.add_history_to_example(feature, self.history, hist_side)
    serialized = example.SerializeToString(deterministic=True)
    self.stats[EXAMPLE_BYTES] += len(serialized)
    return serialized
