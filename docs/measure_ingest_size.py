"""Bytes per example of an ingest or Transform output (for docs/capacity_plan.md).

  python docs/measure_ingest_size.py DIR [DIR ...] [--every 15]

DIR is an `eta ingest --output`, a ClickLogExampleGen `examples/N` or a Transform
`transformed_examples/N` directory (gzipped TFRecords under Split-*/). Prints one
JSON line per DIR: examples, gzipped and uncompressed TFRecord bytes, history
entries (raw examples), the per-example averages, and a least-squares fit of
bytes = base + per_entry x history length over every `--every`-th example, raw and
gzipped alone (no help from neighbouring examples).
"""

import glob
import json
import os
import sys
import zlib

import numpy as np

from tensorflow.core.example import example_pb2

from components.example_io import read_tfrecords

# TFRecord framing around each record: uint64 length, uint32 CRC of the length,
# the data, uint32 CRC of the data. The uncompressed file size is therefore the
# sum of (record length + 16).
_FRAMING = 16


def measure(directory: str, every: int = 15) -> dict:
  files = sorted(glob.glob(os.path.join(directory, "Split-*", "*.gz")))
  examples = raw_bytes = history_entries = 0
  sample = []  # (history length, raw bytes, gzipped-alone bytes)
  for record in read_tfrecords(files):
    examples += 1
    raw_bytes += len(record) + _FRAMING
    example = example_pb2.Example.FromString(record)
    history = example.features.feature.get("hist_item_ids")
    length = len(history.bytes_list.value) if history else 0
    history_entries += length
    if examples % every == 0:
      sample.append((length, len(record), len(zlib.compress(record, 6))))
  gz_bytes = sum(os.path.getsize(path) for path in files)
  result = {
      "dir": directory, "examples": examples, "history_entries": history_entries,
      "mean_history": round(history_entries / examples, 2),
      "gz_bytes": gz_bytes, "raw_bytes": raw_bytes,
      "gz_bytes_per_example": round(gz_bytes / examples, 1),
      "raw_bytes_per_example": round(raw_bytes / examples, 1),
      "compression_ratio": round(raw_bytes / gz_bytes, 2),
  }
  points = np.array(sample, dtype=float)
  if history_entries and len(points) > 2 and np.ptp(points[:, 0]) > 0:
    raw_fit = np.polyfit(points[:, 0], points[:, 1], 1)
    alone_fit = np.polyfit(points[:, 0], points[:, 2], 1)
    result.update(raw_fit_base=round(raw_fit[1], 1), raw_fit_per_entry=round(raw_fit[0], 2),
                  gz_alone_fit_base=round(alone_fit[1], 1),
                  gz_alone_fit_per_entry=round(alone_fit[0], 2))
  report_path = os.path.join(directory, "ingest_report.json")
  if os.path.exists(report_path):
    with open(report_path) as handle:
      report = json.load(handle)
    result.update(max_history=report["config"]["ingest"]["max_history"],
                  ingest_wall_time_s=report["wall_time_s"],
                  ingest_events_per_s=round(report["rows_read"] / report["wall_time_s"], 1))
  return result


if __name__ == "__main__":
  arguments = sys.argv[1:]
  every = 15
  if "--every" in arguments:
    at = arguments.index("--every")
    every = int(arguments[at + 1])
    del arguments[at:at + 2]
  for arg in arguments:
    print(json.dumps(measure(arg, every)))
