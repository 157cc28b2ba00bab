"""The TFX Trainer entry point (`run_fn`) and the same training loop for `eta compare`.

Training fits on the train split and chooses its stopping step on the valid split
(models/early_stopping.py), never on eval; metrics.json reports that step.
"""

import dataclasses
import json
import logging
import os
import time
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from components import events, side_features
from eta_ctr import runtime
from eta_ctr.config import ETA_CONFIG_KEY, EtaConfig
from models import autograph_speedup, data, distribution, early_stopping, features
from models.architectures.base import CtrModel
from models.architectures.registry import build_model
from models.architectures.side import SideFeatures
from models.export import export_serving_model

log = logging.getLogger(__name__)
METRICS_FILE = "metrics.json"
# Examples per validation batch (TrainerConfig.validation_steps counts these).
VALIDATION_BATCH = 1024


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput, config: EtaConfig):
  """(items, categories) table sizes: vocabulary + OOV buckets + the padding index."""
  oov = config.model.num_oov_buckets
  return (tf_transform_output.vocabulary_size_by_name(features.ITEM_VOCAB) + oov + 1,
          tf_transform_output.vocabulary_size_by_name(features.CATEGORY_VOCAB) + oov + 1)


def side_feature_sizes(tf_transform_output: tft.TFTransformOutput,
                       config: EtaConfig) -> Optional[SideFeatures]:
  """The declared side features (config.features) with their table sizes from the
  Transform's vocabularies; None when none is declared."""
  if not config.features:
    return None
  return SideFeatures(config.features,
                      side_features.vocabulary_sizes(tf_transform_output, config.features))


def train_model(config: EtaConfig, transform_output_dir: str, train_files, valid_files,
                log_dir: Optional[str] = None, strategy=None) -> Tuple[CtrModel, Dict[str, Any]]:
  """Trains config.model.name on transformed examples, stopping early on valid_files.

  Args:
    config: model and trainer settings (trainer.train_steps is the step budget).
    transform_output_dir: the Transform graph.
    train_files, valid_files: file patterns of transformed train / valid examples;
      valid_files None = no validation, the whole budget is trained.
    log_dir: TensorBoard logs, if given.
    strategy: a tf.distribute strategy (default: from the environment).

  Returns:
    (model with the best validation's weights, metrics): `best_step` (the chosen
    step), `steps_trained`, `train_steps_budget`, `stopped_early`, `valid_<metric>`
    at the best step (valid_auc, valid_logloss, ...), `validation_history`
    ([{step, metrics...}]), train_seconds (validation excluded), validation_seconds,
    train_examples_per_second, replicas, parameters.

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
  valid_ds = None
  if valid_files is not None:
    valid_ds = data.transformed_dataset(valid_files, tf_transform_output, VALIDATION_BATCH,
                                        shuffle=False, num_epochs=1)
  workers = distribution.worker_count(distribution.tf_config())
  if workers > 1:  # each worker reads its own files (or records, if too few files)
    train_ds = distribution.auto_shard(train_ds, _file_count(train_files), workers)
    if valid_ds is not None:
      valid_ds = distribution.auto_shard(valid_ds, _file_count(valid_files), workers)
  items, categories = vocabulary_sizes(tf_transform_output, config)
  side = side_feature_sizes(tf_transform_output, config)
  with strategy.scope():
    model = build_model(config.model, items, categories, side)
    model.compile(optimizer=keras.optimizers.Adam(trainer.learning_rate,
                                                   global_clipnorm=trainer.clip_norm))
  if strategy.num_replicas_in_sync > 1:
    # Keras sums what each replica's train/test step returns; the metrics are
    # already global, so take one replica's.
    model.distribute_reduction_method = "first"
  log.info("training %s for at most %d steps (batch %d x %d replicas, vocab %d items, %d "
           "categories%s), %s", config.model.name, trainer.train_steps, trainer.batch_size,
           strategy.num_replicas_in_sync, items, categories,
           "".join(f", {spec.name} ({spec.entity} {spec.kind}"
                   + (f", {side.vocab_sizes[spec.name]} rows)" if spec.name in side.vocab_sizes
                      else ")") for spec in (side.specs if side else ())),
           "no valid split: no early stopping" if valid_ds is None else
           f"validating every {trainer.validate_every_steps} steps, patience "
           f"{trainer.patience}")
  log_dir = distribution.write_dir(log_dir) if log_dir else None
  callbacks = [keras.callbacks.TensorBoard(log_dir, update_freq=100)] if log_dir else []
  started = time.time()
  selection = early_stopping.fit_with_selection(model, train_ds, valid_ds, trainer, callbacks)
  train_seconds = time.time() - started - selection.validation_seconds
  metrics: Dict[str, Any] = {f"valid_{name}": value for name, value in selection.best.items()}
  metrics.update(best_step=selection.best_step, steps_trained=selection.steps_trained,
                 train_steps_budget=selection.budget, stopped_early=selection.stopped_early,
                 validation_history=selection.history,
                 train_seconds=train_seconds, validation_seconds=selection.validation_seconds,
                 train_examples_per_second=selection.steps_trained * global_batch
                 / max(train_seconds, 1e-9),
                 replicas=strategy.num_replicas_in_sync,
                 parameters=int(model.count_params()))
  if log_dir:
    distribution.discard_if_not_chief(log_dir)
  log.info("%s: chose step %d of %d trained (budget %d)%s", config.model.name,
           selection.best_step, selection.steps_trained, selection.budget,
           "".join(f", valid {name} {selection.best[name]:.5f}" for name in ("logloss", "auc")
                   if name in selection.best))
  return model, metrics


def _file_count(patterns) -> int:
  patterns = [patterns] if isinstance(patterns, str) else patterns
  return sum(len(tf.io.gfile.glob(pattern)) for pattern in patterns)


def run_fn(fn_args):
  """TFX Trainer: fn_args.custom_config carries {ETA_CONFIG_KEY: EtaConfig JSON}.

  fn_args.eval_files are the valid split (pipeline.pipeline.trainer_eval_split),
  where the stopping step is chosen; without a valid split (IngestConfig.
  valid_fraction 0) they are eval's and are not read: the budget is trained.
  Writes metrics.json (the chosen step, the validation history) to model_run_dir.
  """
  runtime.require_legacy_keras()
  config = EtaConfig.from_json(fn_args.custom_config[ETA_CONFIG_KEY])
  # Before any TF op: a multi-worker strategy configures collectives at start-up.
  strategy = distribution.strategy_from_environment(config.trainer.distribution)
  config = config.replace(trainer=_with_steps(config.trainer, fn_args))
  has_valid = events.SPLIT_VALID in config.ingest.split_names
  valid_files = fn_args.eval_files if has_valid else None
  model, metrics = train_model(config, fn_args.transform_output, fn_args.train_files,
                               valid_files, log_dir=fn_args.model_run_dir, strategy=strategy)
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
                             validation_steps=fn_args.eval_steps or
                             trainer_config.validation_steps)
