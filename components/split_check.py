"""The ingest's last check: every split holds enough examples to train, validate and
evaluate on (train, eval, and valid when IngestConfig.valid_fraction > 0).

A log too small for its split (300 users with 2 events each and the default
per-user 20% split: nothing rounds up to an eval event) used to pass the ingest
and fail minutes later in Transform. `check_splits` turns that into an error at
the ingest that names the split, the users the split cannot serve and the fixes.

The minimum is MIN_SPLIT_EXAMPLES examples per split: StatisticsGen, Transform,
the Trainer's validation and the Evaluator need at least one; a tiny split also
fails this check when a caller asks for more (`minimum`).
"""

import datetime
import math
from typing import Any, Dict

from components import events, histories

MIN_SPLIT_EXAMPLES = 1


class SplitTooSmall(ValueError):
  """A split of the ingest holds fewer than the minimum of examples; says how to fix it."""


def min_events_for_eval(eval_fraction: float) -> float:
  """The fewest events for which the per-user split gives a user one eval event
  (or, for valid_fraction, the fewest train-period events for one valid event).

  histories.assign_splits puts round(n * fraction) of a user's n events in eval
  (halves up), so n * fraction >= 0.5 is needed; inf for a fraction of 0.
  """
  if eval_fraction <= 0:
    return math.inf
  n = max(1, math.floor(0.5 / eval_fraction) - 1)  # then step past float rounding
  while histories.suffix_size(n, eval_fraction) < 1:
    n += 1
  return n


def _time(unix_seconds: int) -> str:
  return datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc).strftime(
      "%Y-%m-%dT%H:%M:%SZ")


def _users_line(report: Dict[str, Any], valid: bool) -> str:
  users = report.get("split_users", {})
  line = (f"Of {report['users']:,} users, {users.get(histories.FEWER_THAN_2_EVENTS, 0):,} "
          f"have fewer than 2 events, {users.get(histories.NO_EVAL_EVENTS, 0):,} have no "
          f"event in eval and {users.get(histories.NO_TRAIN_EVENTS, 0):,} none in train")
  if valid:
    line += f", {users.get(histories.NO_VALID_EVENTS, 0):,} none in valid"
  return line + "."


def _valid_fix(fraction: float) -> str:
  needed = min_events_for_eval(fraction)
  return (f"With --valid-fraction {fraction:g} each user's last {fraction:.0%} of "
          "train-period events (those not in eval) go to valid, rounded to whole events, "
          f"so a user needs at least {needed} of them to get one.\nFix: a larger "
          "--valid-fraction, or --valid-fraction 0 (no valid split: the whole "
          "--train-steps budget is trained and no stopping step is chosen).")


def _per_user_fix(split: str, fraction: float) -> str:
  if split == events.SPLIT_EVAL:
    needed = min_events_for_eval(fraction)
    why = (f"With --eval-fraction {fraction:g} each user's last {fraction:.0%} of events "
           f"go to eval, rounded to whole events, so a user needs at least {needed} events "
           "to get one." if fraction > 0 else "--eval-fraction is 0.")
    return (f"{why}\nFix: --eval-cutoff TIME (one global time: every event at or after it "
            "is in eval), or a larger --eval-fraction (0.25 gives a user with 2 events "
            "one eval event).")
  return (f"With --eval-fraction {fraction:g}, users with too few events have all of them "
          "in eval.\nFix: a smaller --eval-fraction, or --eval-cutoff TIME (one global time: "
          "every event before it is in train).")


def _global_fix(split: str, cutoff: int) -> str:
  where = "at or after" if split == events.SPLIT_EVAL else "before"
  later = "an earlier" if split == events.SPLIT_EVAL else "a later"
  return (f"No event is {where} --eval-cutoff {_time(cutoff)} ({cutoff}).\n"
          f"Fix: {later} --eval-cutoff, or the per-user split (--eval-fraction F "
          "without --eval-cutoff).")


def check_splits(report: Dict[str, Any], minimum: int = MIN_SPLIT_EXAMPLES) -> None:
  """Raises SplitTooSmall when a split of `report` has fewer than `minimum` examples.

  Args:
    report: components.report.build_report's result (examples, users,
      split_users and the config it ran with).
    minimum: examples each split needs at least.

  Raises:
    SplitTooSmall: names the split, its count, the users the split cannot serve
      (fewer than 2 events, no eval event, no train event, no valid event) and
      the flags that fix it (--eval-cutoff, --eval-fraction, --valid-fraction).
  """
  ingest = report.get("config", {}).get("ingest", {})
  valid_fraction = float(ingest.get("valid_fraction", 0.0))
  checked = (events.SPLIT_EVAL, events.SPLIT_TRAIN) + (
      (events.SPLIT_VALID,) if valid_fraction > 0 else ())
  small = [split for split in checked if report["examples"].get(split, 0) < minimum]
  if not small:
    return
  lines = []
  for split in small:  # every split that is too small, so one fix-up run suffices
    count = report["examples"].get(split, 0)
    others = ", ".join(f"{other} {report['examples'].get(other, 0):,}"
                       for other in checked if other != split)
    state = "empty" if count == 0 else f"too small (fewer than {minimum:,} examples)"
    lines.append(f"the {split} split is {state}: {count:,} examples, {others}.")
  lines.append(_users_line(report, valid_fraction > 0))
  for split in small:
    if split == events.SPLIT_VALID:
      lines.append(_valid_fix(valid_fraction))
    elif ingest.get("split") == "global_time":
      lines.append(_global_fix(split, int(ingest["eval_cutoff"])))
    else:
      lines.append(_per_user_fix(split, float(ingest.get("eval_fraction", 0.2))))
  raise SplitTooSmall("\n".join(dict.fromkeys(lines)))  # each fix once
