"""The click-event record, the example features and the rejection reasons.

This module is the contract between the readers, the per-user history builder
and every later stage (Transform reads the feature names from here).
"""

from typing import Any, NamedTuple, Tuple

# Features of every emitted tf.Example.
USER_ID = "user_id"
ITEM_ID = "item_id"
CATEGORY = "category"
TIMESTAMP = "timestamp"
LABEL = "label"
HIST_ITEM_IDS = "hist_item_ids"
HIST_CATEGORIES = "hist_categories"
HIST_TIMESTAMPS = "hist_timestamps"
HIST_LABELS = "hist_labels"  # only with IngestConfig.history_includes_non_clicked

# Columns of the generic click-log table.
REQUIRED_COLUMNS = (USER_ID, ITEM_ID, TIMESTAMP, LABEL)
OPTIONAL_COLUMNS = (CATEGORY,)

# The category of an event whose log has none.
DEFAULT_CATEGORY = "unknown"

# The chronological splits (components/histories.py assign_splits): each user's
# events in time order are train, then valid (the end of the train period, where
# the Trainer and `eta compare` choose the stopping step), then eval (blessing
# and reported metrics only). `valid` exists only with IngestConfig.valid_fraction > 0.
SPLIT_TRAIN = "train"
SPLIT_VALID = "valid"
SPLIT_EVAL = "eval"
SPLITS = (SPLIT_TRAIN, SPLIT_VALID, SPLIT_EVAL)

# Why a row was rejected: the keys of `rows_rejected` in the ingest report.
MALFORMED_ROW = "malformed_row"      # not parseable as a row of the format at all
BAD_ENCODING = "bad_encoding"        # bytes that are not text in the file's encoding
MISSING_FIELD = "missing_field"      # a required column is absent or empty
INVALID_FIELD = "invalid_field"      # a field has an unusable value (bad id, rating...)
BAD_TIMESTAMP = "bad_timestamp"      # neither unix seconds nor ISO-8601
BAD_LABEL = "bad_label"              # label outside {0, 1}
DUPLICATE = "duplicate"              # exact duplicate of an earlier event
REJECTION_REASONS = (MALFORMED_ROW, BAD_ENCODING, MISSING_FIELD, INVALID_FIELD, BAD_TIMESTAMP,
                     BAD_LABEL, DUPLICATE)


class Event(NamedTuple):
  """One valid click-log event.

  `raw` is the source row as read and `origin` where it is ('FILE:LINE'), kept
  so a later rejection (duplicate) can still dead-letter the original row.
  `side` holds the declared side features' values, in declaration order
  (components/side_features.py parse_row; () without features). `ignored` names
  the row's columns that are neither built-in nor declared (the ingest reports
  them once, then clears the field).
  """
  user_id: str
  item_id: str
  category: str
  timestamp: int
  label: int
  raw: str = ""
  origin: str = ""
  side: Tuple[Any, ...] = ()
  ignored: Tuple[str, ...] = ()

  def key(self):
    """What makes two events exact duplicates (the raw text may differ): the
    same time, item, category, label and side-feature values."""
    return (self.timestamp, self.item_id, self.category, self.label, self.side)


class RowError(ValueError):
  """A row that cannot become an Event; `reason` is one of REJECTION_REASONS."""

  def __init__(self, reason: str, detail: str):
    super().__init__(f"{reason}: {detail}")
    self.reason = reason
    self.detail = detail


def dead_letter_record(raw: str, reason: str, detail: str, source: str = "",
                       **extra) -> dict:
  """The JSON object written to the dead-letter output for one rejected row.

  `source` is where the row is ('FILE:LINE'); `extra` adds fields such as
  `row_base64` (the exact bytes of a row that is not text).
  """
  return {"reason": reason, "detail": detail, "row": raw, "source": source, **extra}
