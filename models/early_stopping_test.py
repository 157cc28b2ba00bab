"""Early stopping on the valid split: the best weights come back, the budget bounds it."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from eta_ctr.config import ModelConfig, TrainerConfig
from models import testing
from models.architectures.registry import build_model
from models.early_stopping import BestStepCallback, fit_with_selection


def _tiny_model(learning_rate=0.1):
  """One logit z = w * x + b from z = 0; logloss is its metric, as CtrModel's."""
  inputs = keras.Input(shape=(1,))
  outputs = keras.layers.Dense(1, kernel_initializer="zeros")(inputs)
  model = keras.Model(inputs, outputs)
  model.compile(optimizer=keras.optimizers.SGD(learning_rate),
                loss=keras.losses.BinaryCrossentropy(from_logits=True),
                metrics=[keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss")])
  return model


def _datasets():
  """Training labels are all 1, so z grows without end; the valid labels are 70% clicks,
  so the valid logloss falls until sigmoid(z) = 0.7 and rises after: a best step exists."""
  ones = tf.ones([1, 1])
  train = tf.data.Dataset.from_tensors((ones, ones)).repeat()
  valid_labels = tf.constant([[1.0]] * 7 + [[0.0]] * 3)
  valid = tf.data.Dataset.from_tensors((tf.ones([10, 1]), valid_labels))
  return train, valid


def _valid_logloss(model, valid):
  return model.evaluate(valid, return_dict=True, verbose=0)["logloss"]


def test_stops_when_valid_logloss_rises_and_restores_the_best_weights():
  model = _tiny_model()
  train, valid = _datasets()
  trainer = TrainerConfig(train_steps=200, validate_every_steps=2, patience=2,
                          selection_metric="logloss")
  selection = fit_with_selection(model, train, valid, trainer)

  losses = [entry["logloss"] for entry in selection.history]
  steps = [entry["step"] for entry in selection.history]
  assert steps == list(range(2, 2 * len(steps) + 1, 2))  # every 2 steps
  best = int(np.argmin(losses))
  assert 0 < best < len(losses) - 1, "the valid logloss must fall, then rise"
  assert losses[-1] > losses[best] and losses[-2] > losses[best]  # patience 2
  assert selection.stopped_early and selection.steps_trained == steps[-1] < 200
  assert selection.best_step == steps[best]
  assert selection.best["logloss"] == pytest.approx(losses[best])
  assert selection.validation_seconds > 0
  # The model ends with the best step's weights, not the last step's.
  assert _valid_logloss(model, valid) == pytest.approx(losses[best], abs=1e-6)
  assert model.optimizer.iterations.numpy() == selection.steps_trained
  # ... which is where sigmoid(z) is closest to the valid click rate of 0.7.
  logit = float(model(tf.ones([1, 1]))[0, 0])
  assert abs(1 / (1 + np.exp(-logit)) - 0.7) < 0.05


def test_the_budget_is_an_exact_upper_bound_and_is_validated_last():
  model = _tiny_model(learning_rate=0.01)  # still improving when the budget runs out
  train, valid = _datasets()
  selection = fit_with_selection(model, train, valid,
                                 TrainerConfig(train_steps=7, validate_every_steps=3,
                                               patience=5, selection_metric="logloss"))
  assert [entry["step"] for entry in selection.history] == [3, 6, 7]
  assert (selection.steps_trained, selection.best_step, selection.budget) == (7, 7, 7)
  assert not selection.stopped_early
  assert model.optimizer.iterations.numpy() == 7


def test_without_a_valid_split_the_whole_budget_is_trained():
  model = _tiny_model()
  train, _ = _datasets()
  selection = fit_with_selection(model, train, None, TrainerConfig(train_steps=5))
  assert (selection.best_step, selection.steps_trained, selection.history) == (5, 5, [])
  assert model.optimizer.iterations.numpy() == 5


def test_a_model_without_the_monitored_metric_is_an_error():
  model = _tiny_model()
  model.compile(optimizer="sgd", loss=keras.losses.BinaryCrossentropy(from_logits=True))
  train, valid = _datasets()
  with pytest.raises(ValueError, match="val_logloss"):
    fit_with_selection(model, train, valid, TrainerConfig(train_steps=2, validate_every_steps=1,
                                                          selection_metric="logloss"))
  with pytest.raises(ValueError, match="val_auc"):  # the default reads AUC too
    fit_with_selection(_tiny_model(), train, valid, TrainerConfig(train_steps=2,
                                                                  validate_every_steps=1))


def test_nan_is_never_an_improvement():
  callback = BestStepCallback(budget=10, patience=1, selection_metric="logloss")
  callback.set_model(_tiny_model())
  callback.on_epoch_end(0, {"val_logloss": float("nan")})
  assert callback.selection.best_step == 0 and callback.model.stop_training


@pytest.mark.parametrize("metric, best_step", [("auc_minus_logloss", 4), ("logloss", 2),
                                               ("auc", 6)])
def test_each_selection_metric_picks_its_best_validation(metric, best_step):
  # A MovieLens-like curve: logloss bottoms out first, AUC peaks last.
  logs = {2: (0.730, 0.606), 4: (0.741, 0.609), 6: (0.742, 0.620), 8: (0.735, 0.615)}
  callback = BestStepCallback(budget=100, patience=5, selection_metric=metric)
  callback.set_model(_tiny_model())
  for step, (auc, logloss) in logs.items():
    callback.steps = step
    callback.on_epoch_end(0, {"val_auc": auc, "val_logloss": logloss})
  assert callback.selection.best_step == best_step


def test_a_ctr_model_reports_its_valid_logloss_to_the_selection():
  config = ModelConfig(name="din", long_seq_len=8, short_seq_len=4, top_k=4, embedding_dim=8,
                       mlp_units=(8,))
  model = build_model(config, 200, 13)
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  batch = testing.transformed_batch(config, 64)
  train = tf.data.Dataset.from_tensors(batch).repeat()
  valid = tf.data.Dataset.from_tensors(testing.transformed_batch(config, 64, seed=1))
  selection = fit_with_selection(model, train, valid,
                                 TrainerConfig(train_steps=4, validate_every_steps=2))
  assert [entry["step"] for entry in selection.history] == [2, 4]
  assert {"logloss", "auc"} <= set(selection.best)
