"""Reading ingest outputs back: the tf.Examples of a split as records or dicts."""

import glob
import gzip
import os
import struct
from typing import Dict, Iterator, List

from tensorflow.core.example import example_pb2


def split_files(examples_dir: str, split: str) -> List[str]:
  return sorted(glob.glob(os.path.join(examples_dir, f"Split-{split}", "*.gz")))


def read_records(examples_dir: str, split: str) -> Iterator[bytes]:
  """The serialized records of a split (gzipped TFRecord), without TensorFlow ops."""
  for path in split_files(examples_dir, split):
    with gzip.open(path, "rb") as handle:
      while True:
        header = handle.read(12)  # uint64 length + uint32 masked crc
        if not header:
          break
        (length,) = struct.unpack("<Q", header[:8])
        yield handle.read(length)
        handle.read(4)  # data crc


def example_to_dict(serialized: bytes) -> Dict[str, list]:
  """A tf.Example as {feature: list of python values} (bytes decoded as UTF-8)."""
  example = example_pb2.Example.FromString(serialized)
  result = {}
  for name, feature in example.features.feature.items():
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if kind == "bytes_list":
      values = [v.decode("utf-8") for v in values]
    result[name] = values
  return result


def read_examples(examples_dir: str, split: str) -> Iterator[Dict[str, list]]:
  for record in read_records(examples_dir, split):
    yield example_to_dict(record)
