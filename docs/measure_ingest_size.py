"""Bytes per example of an ingest or Transform output (for docs/capacity_plan.md).

  python docs/measure_ingest_size.py DIR [DIR ...]

DIR is an `eta ingest --output`, a ClickLogExampleGen `examples/N` or a Transform
`transformed_examples/N` directory (gzipped TFRecords under Split-*/). Prints one
JSON line per DIR: examples, gzipped and uncompressed TFRecord bytes, history
entries (raw examples), and the per-example averages.
"""

import glob
import gzip
import json
import os
import struct
import sys

from tensorflow.core.example import example_pb2

_FRAMING = 16  # TFRecord: uint64 length + two uint32 CRCs around each record


def _records(path):
  with gzip.open(path, "rb") as handle:
    while True:
      header = handle.read(12)
      if not header:
        return
      (length,) = struct.unpack("<Q", header[:8])
      yield handle.read(length)
      handle.read(4)


def measure(directory: str) -> dict:
  files = sorted(glob.glob(os.path.join(directory, "Split-*", "*.gz")))
  examples = raw_bytes = history_entries = 0
  for path in files:
    for record in _records(path):
      examples += 1
      raw_bytes += len(record) + _FRAMING
      example = example_pb2.Example.FromString(record)
      history = example.features.feature.get("hist_item_ids")
      history_entries += len(history.bytes_list.value) if history else 0
  gz_bytes = sum(os.path.getsize(path) for path in files)
  result = {
      "dir": directory, "examples": examples, "history_entries": history_entries,
      "mean_history": round(history_entries / examples, 2),
      "gz_bytes": gz_bytes, "raw_bytes": raw_bytes,
      "gz_bytes_per_example": round(gz_bytes / examples, 1),
      "raw_bytes_per_example": round(raw_bytes / examples, 1),
      "compression_ratio": round(raw_bytes / gz_bytes, 2),
  }
  report_path = os.path.join(directory, "ingest_report.json")
  if os.path.exists(report_path):
    with open(report_path) as handle:
      report = json.load(handle)
    result.update(max_history=report["config"]["ingest"]["max_history"],
                  ingest_wall_time_s=report["wall_time_s"],
                  ingest_events_per_s=round(report["rows_read"] / report["wall_time_s"], 1))
  return result


if __name__ == "__main__":
  for arg in sys.argv[1:]:
    print(json.dumps(measure(arg)))
