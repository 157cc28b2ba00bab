"""What a valid id, time and history are: one set of rules for the ingest and the server.

The ingest (components/parsing.py, components/histories.py) turns a broken row
into a dead letter with the rule's words; the server (serving/validation.py)
turns a broken request into INVALID_ARGUMENT with the same words. A model is
therefore never asked to score what it could not have been trained on.

Each check returns None when the value is fine, else the problem as a phrase
that completes "<field> ..." (e.g. "is longer than 512 characters").
"""

import math
import re
from typing import Any, Optional, Union

# Ids are text: at most this many characters (not bytes: a CJK character is 3
# bytes of UTF-8, an emoji 4).
MAX_ID_CHARACTERS = 512
# Unix seconds at or above this are almost surely milliseconds (year 5138).
MAX_UNIX_SECONDS = 10**11
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


# The whitespace stripped around a value: the ASCII characters tf.strings.strip
# removes (absl's ascii_isspace), so the ingest (Python) and the exported graph,
# which strips raw side-feature text itself (models/export.py), agree on every
# value. Python's bare str.strip() would also remove Unicode spaces (U+3000, ...)
# and U+001C..U+001F, which the graph keeps.
WHITESPACE = " \t\n\v\f\r"


def strip(text: str) -> str:
  """`text` without leading and trailing WHITESPACE (tf.strings.strip's rule)."""
  return text.strip(WHITESPACE)


def id_problem(value: Union[str, bytes]) -> Optional[str]:
  """Why `value` is not a valid user, item or category id, or None.

  An id is non-empty UTF-8 text of at most MAX_ID_CHARACTERS characters, with
  no control characters and no leading or trailing whitespace (the ingest
  strips a log's surrounding whitespace before it applies this rule).
  """
  if isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError:
      return "is not UTF-8 text"
  if not value:
    return "is empty"
  if value != strip(value):
    return "has leading or trailing whitespace"
  if _CONTROL_CHARACTERS.search(value):
    return "contains control characters"
  if len(value) > MAX_ID_CHARACTERS:
    return f"is longer than {MAX_ID_CHARACTERS} characters ({len(value)})"
  return None


_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")


def all_plain_ids(values) -> bool:
  """A fast sufficient test for a batch of byte-string ids (a request's): True
  when every one is non-empty ASCII of at most MAX_ID_CHARACTERS bytes, with no
  control characters and no surrounding whitespace, so id_problem is None for
  each. False means: ask id_problem value by value (for the exact message).
  One pass over the joined bytes instead of one decode and regex per id.
  """
  if not all(isinstance(value, bytes) for value in values):
    return False
  joined = b"".join(values)
  if not joined.isascii() or _CONTROL_BYTES.search(joined):
    return False
  return all(0 < len(value) <= MAX_ID_CHARACTERS and not value[:1].isspace()
             and not value[-1:].isspace() for value in values)


def unix_seconds_problem(seconds: Union[int, float]) -> Optional[str]:
  """Why `seconds` is not a usable event time in unix seconds, or None."""
  try:
    finite = math.isfinite(seconds)
  except OverflowError:  # an int too large for a float
    finite = True
  if not finite:
    return "is not finite"
  if seconds < 0:
    return "is before 1970 (negative unix seconds)"
  if seconds >= MAX_UNIX_SECONDS:
    return "is too large for unix seconds (milliseconds?)"
  return None


# The largest magnitude a numeric side feature (float32 on the example) can hold.
MAX_FLOAT32 = 3.4028234663852886e38


def numeric_problem(value: float) -> Optional[str]:
  """Why a number is not a usable numeric side-feature value, or None: it must
  be finite and within float32's range (components/side_features.py)."""
  if not math.isfinite(value):
    return "is not a finite number"
  if abs(value) > MAX_FLOAT32:
    return "is beyond float32's range"
  return None


def in_history(behaviour_time: int, event_time: int) -> bool:
  """Whether a behaviour at `behaviour_time` may be in the history of an event
  at `event_time`: strictly earlier only, so events of the same second are never
  each other's history (components/histories.py builds examples so, and the
  server refuses a `score` history that breaks it)."""
  return behaviour_time < event_time


def is_missing(value: Any) -> bool:
  """A cell with no value: None, NaN, or text that is empty or only whitespace."""
  if value is None:
    return True
  if isinstance(value, float) and math.isnan(value):
    return True
  return isinstance(value, str) and not strip(value)
