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

from eta_ctr.config import EtaConfig
from models import data, features
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
                log_dir: Optional[str] = None) -> Tuple[CtrModel, Dict[str, float]]:
  """Trains config.model.name on transformed examples; returns (model, eval metrics)."""
  tf.keras.utils.set_random_seed(config.model.seed)
  tf_transform_output = tft.TFTransformOutput(transform_output_dir)
  trainer = config.trainer
  train_ds = data.transformed_dataset(train_files, tf_transform_output, trainer.batch_size,
                                      shuffle=True, seed=config.model.seed)
  eval_ds = data.transformed_dataset(eval_files, tf_transform_output, 1024, shuffle=False,
                                     num_epochs=1)
  items, categories = vocabulary_sizes(tf_transform_output, config)
  model = build_model(config.model, items, categories)
  model.compile(optimizer=keras.optimizers.Adam(trainer.learning_rate))
  log.info("training %s for %d steps (batch %d, vocab %d items, %d categories)",
           config.model.name, trainer.train_steps, trainer.batch_size, items, categories)
  callbacks = [keras.callbacks.TensorBoard(log_dir, update_freq=100)] if log_dir else []
  started = time.time()
  model.fit(train_ds, epochs=1, steps_per_epoch=trainer.train_steps, callbacks=callbacks,
            verbose=2)
  train_seconds = time.time() - started
  metrics = model.evaluate(eval_ds, steps=trainer.eval_steps, return_dict=True, verbose=0)
  metrics = {name: float(value) for name, value in metrics.items()}
  metrics.update(train_seconds=train_seconds,
                 train_examples_per_second=trainer.train_steps * trainer.batch_size
                 / max(train_seconds, 1e-9),
                 parameters=int(model.count_params()))
  log.info("%s eval: %s", config.model.name, json.dumps(metrics))
  return model, metrics


def run_fn(fn_args):
  """TFX Trainer: fn_args.custom_config carries {'eta_config': json}."""
  config = EtaConfig.from_json(fn_args.custom_config["eta_config"])
  config = config.replace(trainer=_with_steps(config.trainer, fn_args))
  model, metrics = train_model(config, fn_args.transform_output, fn_args.train_files,
                               fn_args.eval_files, log_dir=fn_args.model_run_dir)
  export_serving_model(model, tft.TFTransformOutput(fn_args.transform_output), config,
                       fn_args.serving_model_dir)
  with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, METRICS_FILE), "w") as handle:
    handle.write(json.dumps(metrics, indent=2))


def _with_steps(trainer_config, fn_args):
  return dataclasses.replace(trainer_config, train_steps=fn_args.train_steps or
                             trainer_config.train_steps,
                             eval_steps=fn_args.eval_steps or trainer_config.eval_steps)
