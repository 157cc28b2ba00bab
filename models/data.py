"""Datasets of transformed examples for training and evaluation."""

import tensorflow as tf
import tensorflow_transform as tft

from components import side_features
from models import features


def transformed_dataset(file_pattern, tf_transform_output: tft.TFTransformOutput,
                        batch_size: int, shuffle: bool, num_epochs=None,
                        seed: int = 0, keep=(), shuffle_buffer: int = 10_000
                       ) -> tf.data.Dataset:
  """Batches of {transformed feature: tensor} from gzipped TFRecords, label included
  (plus the `keep` features, e.g. user_id). The declared side features' tensors
  (every transformed feature that is not a built-in one) are model inputs too."""
  spec = tf_transform_output.transformed_feature_spec().copy()
  built_in_unused = side_features.BUILT_IN_TRANSFORMED - set(features.MODEL_INPUTS)
  unused = (set(spec) & built_in_unused) - {features.LABEL} - set(keep)
  for name in unused:
    spec.pop(name)
  return tf.data.experimental.make_batched_features_dataset(
      file_pattern=file_pattern, batch_size=batch_size, features=spec,
      reader=lambda files: tf.data.TFRecordDataset(files, compression_type="GZIP"),
      num_epochs=num_epochs, shuffle=shuffle, shuffle_seed=seed,
      shuffle_buffer_size=shuffle_buffer, drop_final_batch=False)
