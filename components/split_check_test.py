"""A log too small for its split is an error at the ingest that counts the users and
names the fixes; the examples, the report and the dead letters are written first."""

import dataclasses
import glob
import json
import os

import pytest

from components import events, histories
from components.ingest_job import run_ingest
from components.split_check import SplitTooSmall, check_splits, min_events_for_eval
from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig

BAD_ROWS = ["u1,i1,c1,last tuesday,1", "u1,i1,c1,100,7", ",i1,c1,100,1"]


def write_small_log(path, users=300, events_per_user=2, single_event_users=0):
  """`users` users with `events_per_user` events each, plus users with one event
  and the BAD_ROWS; returns the number of rows."""
  rows = ["user_id,item_id,category,timestamp,label"]
  for user in range(users):
    rows += [f"u{user},i{(user + k) % 40},c{k},{1_600_000_000 + 3600 * k + user},{k % 2}"
             for k in range(events_per_user)]
  rows += [f"s{user},i{user % 40},c0,{1_600_000_000 + user},1"
           for user in range(single_event_users)]
  path.write_text("\n".join(rows + BAD_ROWS) + "\n")
  return len(rows) - 1 + len(BAD_ROWS)


def _report(examples, users=10, fewer_than_2=0, no_eval=0, no_train=0, no_valid=0, **ingest):
  """examples: (train, eval) counts with valid_fraction 0 (the default here), else
  (train, valid, eval)."""
  ingest.setdefault("valid_fraction", 0.0)
  config = IngestConfig(**ingest)
  counts = dict(zip(config.split_names, examples))
  return {"examples": {split: counts.get(split, 0) for split in events.SPLITS},
          "users": users,
          "split_users": {histories.FEWER_THAN_2_EVENTS: fewer_than_2,
                          histories.NO_EVAL_EVENTS: no_eval,
                          histories.NO_TRAIN_EVENTS: no_train,
                          histories.NO_VALID_EVENTS: no_valid},
          "config": {"ingest": dataclasses.asdict(config)}}


def test_300_users_with_2_events_leave_eval_empty(tmp_path):
  log = tmp_path / "clicks.csv"
  rows = write_small_log(log, single_event_users=7)
  out = tmp_path / "out"
  config = EtaConfig(source=SourceConfig(format="csv", path=str(log)))
  with pytest.raises(SplitTooSmall) as raised:
    run_ingest(config, str(out))
  # Every empty split and every fix in one message, so one corrected run suffices.
  assert str(raised.value).splitlines() == [
      "the eval split is empty: 0 examples, train 607, valid 0.",
      "the valid split is empty: 0 examples, eval 0, train 607.",
      "Of 307 users, 7 have fewer than 2 events, 307 have no event in eval and 0 none in "
      "train, 307 none in valid.",
      "With --eval-fraction 0.2 each user's last 20% of events go to eval, rounded to whole "
      "events, so a user needs at least 3 events to get one.",
      "Fix: --eval-cutoff TIME (one global time: every event at or after it is in eval), or "
      "a larger --eval-fraction (0.25 gives a user with 2 events one eval event).",
      "With --valid-fraction 0.1 each user's last 10% of train-period events (those not in "
      "eval) go to valid, rounded to whole events, so a user needs at least 5 of them to get "
      "one.",
      "Fix: a larger --valid-fraction, or --valid-fraction 0 (no valid split: the whole "
      "--train-steps budget is trained and no stopping step is chosen).",
      f"The ingest report and the dead letters are in {out}"]
  # Nothing is lost: the report and the dead letters are written before the error.
  with open(out / "ingest_report.json") as handle:
    report = json.load(handle)
  assert report["rows_read"] == rows and report["rows_rejected"]["total"] == len(BAD_ROWS)
  assert report["examples"] == {"train": 607, "valid": 0, "eval": 0}
  assert report["split_users"] == {"fewer_than_2_events": 7, "no_eval_events": 307,
                                   "no_train_events": 0, "no_valid_events": 307}
  dead = [line for f in glob.glob(str(out / "dead_letter" / "*.jsonl")) for line in open(f)]
  assert len(dead) == len(BAD_ROWS)

  # The first fix the message names works: 0.25 gives every 2-event user one eval event;
  # then the valid split is what is too small (one train-period event rounds to none).
  with pytest.raises(SplitTooSmall) as raised:
    run_ingest(config.replace(ingest=IngestConfig(eval_fraction=0.25)),
               str(tmp_path / "fixed"))
  assert str(raised.value).splitlines()[:4] == [
      "the valid split is empty: 0 examples, eval 300, train 307.",
      "Of 307 users, 7 have fewer than 2 events, 7 have no event in eval and 0 none in "
      "train, 307 none in valid.",
      "With --valid-fraction 0.1 each user's last 10% of train-period events (those not in "
      "eval) go to valid, rounded to whole events, so a user needs at least 5 of them to "
      "get one.",
      "Fix: a larger --valid-fraction, or --valid-fraction 0 (no valid split: the whole "
      "--train-steps budget is trained and no stopping step is chosen)."]
  # Its second fix works too.
  fixed = run_ingest(config.replace(ingest=IngestConfig(eval_fraction=0.25, valid_fraction=0)),
                     str(tmp_path / "fixed_again"))
  assert fixed["examples"] == {"train": 307, "valid": 0, "eval": 300}
  assert fixed["split_users"]["no_eval_events"] == 7
  assert not os.path.exists(tmp_path / "fixed_again" / "Split-valid")


def test_a_global_cutoff_after_every_event_or_before_them():
  cutoff = 1_600_000_000
  with pytest.raises(SplitTooSmall, match=r"eval split is empty(.|\n)*No event is at or "
                     r"after --eval-cutoff 2020-09-13T12:26:40Z \(1600000000\)\.\nFix: an "
                     r"earlier --eval-cutoff"):
    check_splits(_report((50, 0), split="global_time", eval_cutoff=cutoff))
  with pytest.raises(SplitTooSmall, match=r"train split is empty: 0 examples, eval 50\."
                     r"(.|\n)*No event is before(.|\n)*a later --eval-cutoff"):
    check_splits(_report((0, 50), no_train=10, split="global_time", eval_cutoff=cutoff))


def test_everything_in_eval_per_user():
  with pytest.raises(SplitTooSmall, match=r"train split is empty(.|\n)*Of 10 users, 10 "
                     r"have fewer than 2 events, 0 have no event in eval and 10 none in train"
                     r"(.|\n)*a smaller --eval-fraction"):
    check_splits(_report((0, 10), fewer_than_2=10, no_train=10, eval_fraction=0.6))


def test_an_empty_valid_split_is_refused_only_when_asked_for():
  check_splits(_report((8, 2)))  # valid_fraction 0: no valid split to check
  check_splits(_report((8, 1, 2), valid_fraction=0.1))
  with pytest.raises(SplitTooSmall, match=r"the valid split is empty: 0 examples, eval 2, "
                     r"train 8\.\n.*3 none in valid\.\nWith --valid-fraction 0\.2 (.|\n)*"
                     r"needs at least 3 of them"):
    check_splits(_report((8, 0, 2), no_valid=3, valid_fraction=0.2))


def test_a_minimum_above_one_and_splits_that_pass():
  check_splits(_report((8, 2)))
  check_splits(_report((8, 0)), minimum=0)
  with pytest.raises(SplitTooSmall, match=r"eval split is too small \(fewer than 5 "
                     r"examples\): 2 examples, train 8\."):
    check_splits(_report((8, 2)), minimum=5)


@pytest.mark.parametrize("fraction, events_needed", [
    (0.2, 3), (0.25, 2), (0.1, 5), (0.05, 10), (0.3, 2), (0.5, 1), (0.0, float("inf"))])
def test_events_a_user_needs_for_an_eval_event(fraction, events_needed):
  assert min_events_for_eval(fraction) == events_needed
  if events_needed != float("inf"):  # the same rounding as the split itself
    config = IngestConfig(eval_fraction=fraction)
    assert events.SPLIT_EVAL in histories.assign_splits(list(range(events_needed)), config)
    assert events.SPLIT_EVAL not in histories.assign_splits(list(range(events_needed - 1)),
                                                            config)
