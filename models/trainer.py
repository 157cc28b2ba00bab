"""The TFX Trainer entry point (`run_fn`) and the same training loop for `eta compare`."""

import dataclasses
import json
import logging
import os
import time
from typing import Dict, Optional, Tuple

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from eta_ctr import runtime
from eta_ctr.config import ETA_CONFIG_KEY, EtaConfig
from models import autograph_speedup, data, distribution, features
from models.architectures.base import CtrModel
from models.architectures.registry import build_model
from models.export import export_serving_model

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput, config: EtaConfig):
  """(items, categories) table sizes: vocabulary + OOV buckets + the padding index."""
  oov = config.model.num_oov_buckets
  return (tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB) + oov + 1,
          tf_transform_output.vocabulary_size_by_name(features.CATEGORY_VOCAB) + oov + 1)


def train_model(config: EtaConfig, transform_output_dir: str, train_files, eval_files,
                log_dir: Optional[str] = None, strategy=None) -> Tuple[CtrModel, Dict[str, float]]:
  """Trains config.model.name on transformed examples; returns (model, eval metrics).

  Raises:
    eta_ctr.runtime.KerasVersionError: tf.keras is Keras 3 in this process.
  """
  runtime.require_legacy_keras()
  autograph_speedup.install()  # before the first trace of a tf_keras function
  strategy = strategy or distribution.strategy_from_environment(config.trainer.distribution)
  tf.keras.utils.set_random_seed(config.model.seed)
  tf_transform_output = tft.TFTransformOutput(transform_output_dir)
  trainer = config.trainer
  # batch_size is per replica; Keras splits each dataset batch across the replicas.
  global_batch = distribution.global_batch_size(trainer.batch_size, strategy)
  train_ds = data.transformed_dataset(train_files, tf_transform_output, global_batch,
                                      shuffle=True, seed=config.model.seed,
                                      shuffle_buffer=trainer.shuffle_buffer)
  eval_ds = data.transformed_dataset(eval_files, tf_transform_output, 1024, shuffle=False,
                                     num_epochs=1)
  workers = distribution.worker_count(distribution.tf_config())
  if workers > 1:  # each worker reads its own files (or records, if too few files)
    train_ds = distribution.auto_shard(train_ds, _file_count(train_files), workers)
    eval_ds = distribution.auto_shard(eval_ds, _file_count(eval_files), workers)
  items, categories = vocabulary_sizes(tf_transform_output, config)
  with strategy.scope():
    model = build_model(config.model, items, categories)
    model.compile(optimizer=keras.optimizers.Adam(trainer.learning_rate))
  if strategy.num_replicas_in_sync > 1:
    # Keras sums what each replica's train/test step returns; the metrics are
    # already global, so take one replica's.
    model.distribute_reduction_method = "first"
  log.info("training %s for %d steps (batch %d x %d replicas, vocab %d items, %d categories)",
           config.model.name, trainer.train_steps, trainer.batch_size,
           strategy.num_replicas_in_sync, items, categories)
  log_dir = distribution.write_dir(log_dir) if log_dir else None
  callbacks = [keras.callbacks.TensorBoard(log_dir, update_freq=100)] if log_dir else []
  started = time.time()
  model.fit(train_ds, epochs=1, steps_per_epoch=trainer.train_steps, callbacks=callbacks,
            verbose=2)
  train_seconds = time.time() - started
  metrics = model.evaluate(eval_ds, steps=trainer.eval_steps, return_dict=True, verbose=0)
  metrics = {name: float(value) for name, value in metrics.items()}
  metrics.update(train_seconds=train_seconds,
                 train_examples_per_second=trainer.train_steps * global_batch
                 / max(train_seconds, 1e-9),
                 replicas=strategy.num_replicas_in_sync,
                 parameters=int(model.count_params()))
  if log_dir:
    distribution.discard_if_not_chief(log_dir)
  log.info("%s eval: %s", config.model.name, json.dumps(metrics))
  return model, metrics


def _file_count(patterns) -> int:
  patterns = [patterns] if isinstance(patterns, str) else patterns
  return sum(len(tf.io.gfile.glob(pattern)) for pattern in patterns)


def run_fn(fn_args):
  """TFX Trainer: fn_args.custom_config carries {ETA_CONFIG_KEY: EtaConfig JSON}."""
  runtime.require_legacy_keras()
  config = EtaConfig.from_json(fn_args.custom_config[ETA_CONFIG_KEY])
  # Before any TF op: a multi-worker strategy configures collectives at start-up.
  strategy = distribution.strategy_from_environment(config.trainer.distribution)
  config = config.replace(trainer=_with_steps(config.trainer, fn_args))
  model, metrics = train_model(config, fn_args.transform_output, fn_args.train_files,
                               fn_args.eval_files, log_dir=fn_args.model_run_dir,
                               strategy=strategy)
  # Every worker exports (the save may need collectives); only the chief's copy stays.
  export_dir = distribution.write_dir(fn_args.serving_model_dir)
  export_serving_model(model, tft.TFTransformOutput(fn_args.transform_output), config,
                       export_dir)
  distribution.discard_if_not_chief(export_dir)
  if distribution.is_chief():
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as handle:
      handle.write(json.dumps(metrics, indent=2))


def _with_steps(trainer_config, fn_args):
  return dataclasses.replace(trainer_config, train_steps=fn_args.train_steps or
                             trainer_config.train_steps,
                             eval_steps=fn_args.eval_steps or trainer_config.eval_steps)
