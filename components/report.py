"""The ingest report: counts that reconcile, example counts and history-length stats."""

import json
from typing import Any, Dict

from apache_beam.io.filesystems import FileSystems

from components import events, histories

IGNORED_COLUMNS = histories.IGNORED_COLUMNS

REPORT_FILE = "ingest_report.json"
# split_users: how many users have fewer than 2 events, none in eval, none in
# train, none in valid (0 without a valid split).
SPLIT_USER_KEYS = (histories.FEWER_THAN_2_EVENTS, histories.NO_EVAL_EVENTS,
                   histories.NO_TRAIN_EVENTS, histories.NO_VALID_EVENTS)


def history_length_summary(histogram: Dict[Any, int]) -> Dict[str, float]:
  """mean / percentiles / max of history lengths from a {length: examples} histogram."""
  pairs = sorted((int(length), count) for length, count in histogram.items())
  total = sum(count for _, count in pairs)
  if not total:
    return {"mean": 0.0, "p50": 0, "p90": 0, "p99": 0, "max": 0, "empty_share": 0.0}

  def percentile(q):
    threshold, seen = q * total, 0
    for length, count in pairs:
      seen += count
      if seen >= threshold:
        return length
    return pairs[-1][0]

  return {
      "mean": round(sum(length * count for length, count in pairs) / total, 3),
      "p50": percentile(0.5), "p90": percentile(0.9), "p99": percentile(0.99),
      "max": pairs[-1][0],
      "empty_share": round(dict(pairs).get(0, 0) / total, 6),
  }


def build_report(stats: Dict[str, Any], wall_time_s: float,
                 config: Dict[str, Any]) -> Dict[str, Any]:
  """The ingest_report.json content; raises if the counts do not reconcile.

  `examples` counts every split of events.SPLITS (valid is 0 without a valid
  split); their sum is rows_valid + negatives_sampled.
  """
  rejected = {reason: int(stats.get("rejected", {}).get(reason, 0))
              for reason in events.REJECTION_REASONS}
  rejected["total"] = sum(rejected.values())
  examples = {split: int(stats.get("examples", {}).get(split, 0)) for split in events.SPLITS}
  report = {
      "rows_read": int(stats.get("rows_read", 0)),
      "rows_valid": int(stats.get("rows_valid", 0)),
      "rows_rejected": rejected,
      "negatives_sampled": int(stats.get("negatives_sampled", 0)),
      "users": int(stats.get("users", 0)),
      "split_users": {key: int(stats.get(histories.SPLIT_USERS, {}).get(key, 0))
                      for key in SPLIT_USER_KEYS},
      "examples": examples,
      "examples_total": sum(examples.values()),
      "history_length": history_length_summary(stats.get("history_length", {})),
      # Columns of the log that are neither built-in nor declared features:
      # {column: number of files holding it}; their values are not used.
      IGNORED_COLUMNS: {column: len(files) for column, files
                        in sorted(stats.get(IGNORED_COLUMNS, {}).items())},
      "wall_time_s": round(wall_time_s, 3),
      "config": config,
  }
  if histories.SIDE_FEATURES in stats:
    report[histories.SIDE_FEATURES] = side_features_summary(
        stats[histories.SIDE_FEATURES], report["examples_total"], report["rows_valid"])
  if report["rows_read"] != report["rows_valid"] + rejected["total"]:
    raise AssertionError(
        f"ingest counts do not reconcile: rows_read={report['rows_read']} != "
        f"rows_valid={report['rows_valid']} + rows_rejected={rejected['total']}")
  if report["examples_total"] != report["rows_valid"] + report["negatives_sampled"]:
    raise AssertionError(
        f"ingest counts do not reconcile: {report['examples_total']} examples != "
        f"{report['rows_valid']} valid rows + {report['negatives_sampled']} negatives")
  return report


def side_features_summary(stats: Dict[str, Any], examples: int,
                          rows_valid: int) -> Dict[str, Any]:
  """The report's `side_features` (only with declared features): per feature the
  valid rows whose value was missing (and their share), and the mean serialized
  bytes per example, also without the hist_NAME lists where some feature has
  in_history (what keeping item features in the history costs)."""
  missing = stats.get(histories.MISSING_VALUES, {})
  summary = {
      "missing_values": {name: {"rows": int(count),
                                "share": round(count / rows_valid, 6) if rows_valid else 0.0}
                         for name, count in sorted(missing.items())},
      "bytes_per_example": round(stats.get(histories.EXAMPLE_BYTES, 0) / examples, 1)
                           if examples else 0.0,
  }
  if histories.EXAMPLE_BYTES_WITHOUT_HISTORY in stats:
    summary["bytes_per_example_without_history_features"] = (
        round(stats[histories.EXAMPLE_BYTES_WITHOUT_HISTORY] / examples, 1)
        if examples else 0.0)
  return summary


def write_report(report: Dict[str, Any], output_dir: str) -> str:
  path = f"{output_dir.rstrip('/')}/{REPORT_FILE}"
  with FileSystems.create(path) as handle:
    handle.write(json.dumps(report, indent=2, sort_keys=True).encode("utf-8"))
  return path


def format_report(report: Dict[str, Any]) -> str:
  """A short human-readable table of the report."""
  rejected = report["rows_rejected"]
  reasons = ", ".join(f"{k}={v}" for k, v in rejected.items() if k != "total" and v)
  hist = report["history_length"]
  lines = [
      f"rows read          {report['rows_read']:>12,}",
      f"rows valid         {report['rows_valid']:>12,}",
      f"rows rejected      {rejected['total']:>12,}" + (f"   ({reasons})" if reasons else ""),
      f"negatives sampled  {report['negatives_sampled']:>12,}",
      f"users              {report['users']:>12,}   ({_split_users(report)})",
      *(f"examples {split:<10}{report['examples'][split]:>12,}" for split in events.SPLITS),
      f"history length     mean {hist['mean']}, p50 {hist['p50']}, p90 {hist['p90']}, "
      f"max {hist['max']}, empty {hist['empty_share']:.1%}",
      f"wall time          {report['wall_time_s']:>11.1f}s",
  ]
  ignored = report.get(IGNORED_COLUMNS)
  if ignored:
    lines.append("ignored columns    " + ", ".join(
        f"{column} ({files} file{'s' if files > 1 else ''})"
        for column, files in ignored.items()) + "   (not declared as features)")
  side = report.get(histories.SIDE_FEATURES)
  if side:
    missing = ", ".join(f"{name} {value['share']:.1%}"
                        for name, value in side["missing_values"].items() if value["rows"])
    lines.append(f"side features      {len(side['missing_values'])} declared, "
                 f"missing: {missing or 'none'}")
    size = f"bytes per example  {side['bytes_per_example']:,.1f}"
    if "bytes_per_example_without_history_features" in side:
      size += (f"   ({side['bytes_per_example_without_history_features']:,.1f} without the "
               "history features)")
    lines.append(size)
  return "\n".join(lines)


def _split_users(report: Dict[str, Any]) -> str:
  users = report.get("split_users", {})
  return (f"{users.get(histories.FEWER_THAN_2_EVENTS, 0):,} with fewer than 2 events, "
          f"{users.get(histories.NO_EVAL_EVENTS, 0):,} with none in eval, "
          f"{users.get(histories.NO_TRAIN_EVENTS, 0):,} with none in train, "
          f"{users.get(histories.NO_VALID_EVENTS, 0):,} with none in valid")
