"""Reading ingest outputs back: the tf.Examples of a split as records or dicts."""

import glob
import os
from typing import Dict, Iterable, Iterator, List

from tensorflow.core.example import example_pb2

_READ_BATCH = 1024  # records per tf.data element: far less per-record overhead than one by one


def split_files(examples_dir: str, split: str) -> List[str]:
  return sorted(glob.glob(os.path.join(examples_dir, f"Split-{split}", "*.gz")))


def read_tfrecords(paths: Iterable[str], compression_type: str = "GZIP") -> Iterator[bytes]:
  """The serialized records of TFRecord files, file by file in the given order.

  Read by TensorFlow's own reader, which checks each record's length and data
  CRCs: a corrupt or truncated file raises tf.errors.DataLossError instead of
  yielding garbage.
  """
  paths = list(paths)
  if not paths:
    return
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  dataset = tf.data.TFRecordDataset(paths, compression_type=compression_type)
  for batch in dataset.batch(_READ_BATCH).as_numpy_iterator():
    yield from batch


def read_records(examples_dir: str, split: str) -> Iterator[bytes]:
  """The serialized records of a split (gzipped TFRecord files)."""
  return read_tfrecords(split_files(examples_dir, split))


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
