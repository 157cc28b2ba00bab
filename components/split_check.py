"""The ingest's last check: both splits hold enough examples to train and evaluate on.

A log too small for its split (300 users with 2 events each and the default
per-user 20% split: nothing rounds up to an eval event) used to pass the ingest
and fail minutes later in Transform. `check_splits` turns that into an error at
the ingest that names the split, the users the split cannot serve and the fixes.

The minimum is MIN_SPLIT_EXAMPLES examples per split: StatisticsGen, Transform
and the Evaluator need at least one; a tiny split also fails this check when a
caller asks for more (`minimum`).
"""

import datetime
import math
from typing import Any, Dict

from components import events, histories

MIN_SPLIT_EXAMPLES = 1


class SplitTooSmall(ValueError):
  """A split of the ingest holds fewer than the minimum of examples; says how to fix it."""


def min_events_for_eval(eval_fraction: float) -> float:
  """The fewest events for which the per-user split gives a user one eval event.

  histories.split_flags puts round(n * fraction) of a user's n events in eval
  (halves up), so n * fraction >= 0.5 is needed; inf for a fraction of 0.
  """
  if eval_fraction <= 0:
    return math.inf
  n = max(1, math.floor(0.5 / eval_fraction) - 1)  # then step past float rounding
  while math.floor(n * eval_fraction + 0.5) < 1:
    n += 1
  return n


def _time(unix_seconds: int) -> str:
  return datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc).strftime(
      "%Y-%m-%dT%H:%M:%SZ")


def _users_line(report: Dict[str, Any]) -> str:
  users = report.get("split_users", {})
  return (f"Of {report['users']:,} users, {users.get(histories.FEWER_THAN_2_EVENTS, 0):,} "
          f"have fewer than 2 events, {users.get(histories.NO_EVAL_EVENTS, 0):,} have no "
          f"event in eval and {users.get(histories.NO_TRAIN_EVENTS, 0):,} none in train.")


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
      (fewer than 2 events, no eval event, no train event) and the flags that
      fix it (--eval-cutoff, --eval-fraction).
  """
  ingest = report.get("config", {}).get("ingest", {})
  for split in (events.SPLIT_EVAL, events.SPLIT_TRAIN):
    count = report["examples"][split]
    if count >= minimum:
      continue
    other = events.SPLIT_TRAIN if split == events.SPLIT_EVAL else events.SPLIT_EVAL
    state = "empty" if count == 0 else f"too small (fewer than {minimum:,} examples)"
    lines = [f"the {split} split is {state}: {count:,} examples, {other} "
             f"{report['examples'][other]:,}.", _users_line(report)]
    if ingest.get("split") == "global_time":
      lines.append(_global_fix(split, int(ingest["eval_cutoff"])))
    else:
      lines.append(_per_user_fix(split, float(ingest.get("eval_fraction", 0.2))))
    raise SplitTooSmall("\n".join(lines))
