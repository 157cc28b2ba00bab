"""Early stopping on the valid split within a step budget, the best weights kept.

`fit_with_selection` trains a compiled Keras model for at most
`TrainerConfig.train_steps` steps. With validation data it validates every
`validate_every_steps` steps and after the last one, stops after `patience`
validations without a better `TrainerConfig.selection_metric` (by default valid
AUC - valid logloss, FuxiCTR's monitor), and ends with the weights of the best
validation; `Selection` says which step that was. Without validation data it
trains the whole budget.
"""

import dataclasses
import logging
import math
import time
from typing import Any, Dict, List, Optional

import tf_keras as keras

from eta_ctr.config import (SELECTION_AUC, SELECTION_AUC_MINUS_LOGLOSS, SELECTION_LOGLOSS,
                            TrainerConfig)
from models import autograph_speedup

log = logging.getLogger(__name__)
# The metrics (CtrModel's, on the valid split) each selection metric reads.
_NEEDS = {SELECTION_AUC_MINUS_LOGLOSS: ("auc", "logloss"), SELECTION_LOGLOSS: ("logloss",),
          SELECTION_AUC: ("auc",)}


def selection_score(metrics: Dict[str, float], selection_metric: str) -> float:
  """The value early stopping maximises, from unprefixed valid metrics."""
  if selection_metric == SELECTION_AUC_MINUS_LOGLOSS:
    return metrics["auc"] - metrics["logloss"]
  if selection_metric == SELECTION_LOGLOSS:
    return -metrics["logloss"]
  return metrics["auc"]


@dataclasses.dataclass
class Selection:
  """The stopping step training chose.

  Attributes:
    best_step: the step whose weights the model ends with (the budget without
      validation).
    steps_trained: steps run in all (<= the budget).
    budget: TrainerConfig.train_steps.
    stopped_early: True when patience ran out before the budget.
    best: the validation metrics at best_step (unprefixed: {"logloss": ..., "auc": ...});
      {} without validation.
    history: [{"step": s, <metric>: value, ...}] of every validation, in order.
    validation_seconds: wall time spent validating (not training).
  """
  best_step: int
  steps_trained: int
  budget: int
  stopped_early: bool = False
  best: Dict[str, float] = dataclasses.field(default_factory=dict)
  history: List[Dict[str, float]] = dataclasses.field(default_factory=list)
  validation_seconds: float = 0.0

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


class BestStepCallback(keras.callbacks.Callback):
  """Validation-driven early stopping within a step budget; restores the best weights.

  Counts steps in on_train_batch_end (one call per step: steps_per_execution 1,
  compile's default), stops at `budget` steps, and on each epoch end (one
  validation) compares selection_score() with the best so far: strictly higher
  is better, NaN never is. After `patience` validations without improvement it
  stops; at the end of training the best weights are set back.

  Args:
    budget: the most steps to train.
    patience: validations without improvement before stopping; >= 1.
    selection_metric: one of eta_ctr.config.SELECTION_METRICS.
  """

  def __init__(self, budget: int, patience: int,
               selection_metric: str = SELECTION_AUC_MINUS_LOGLOSS):
    super().__init__()
    self.budget, self.patience, self.selection_metric = budget, patience, selection_metric
    self.steps, self.wait, self.best_value = 0, 0, -math.inf
    self.best_weights = None
    self.selection = Selection(best_step=0, steps_trained=0, budget=budget)
    self._test_started = None

  def on_test_begin(self, logs=None):
    self._test_started = time.perf_counter()

  def on_test_end(self, logs=None):
    self.selection.validation_seconds += time.perf_counter() - self._test_started

  def on_train_batch_end(self, batch, logs=None):
    self.steps += 1
    if self.steps >= self.budget:
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    missing = [f"val_{name}" for name in _NEEDS[self.selection_metric]
               if f"val_{name}" not in logs]
    if missing:
      raise ValueError(f"early stopping on {self.selection_metric} needs {missing} in the "
                       f"epoch logs, got {sorted(logs)}")
    metrics = {name[len("val_"):]: float(value) for name, value in logs.items()
               if name.startswith("val_")}
    self.selection.history.append({"step": self.steps, **metrics})
    value = selection_score(metrics, self.selection_metric)
    if value > self.best_value:  # False for NaN
      self.best_value, self.wait = value, 0
      self.best_weights = self.model.get_weights()
      self.selection.best_step, self.selection.best = self.steps, metrics
      verdict = "best so far"
    else:
      self.wait += 1
      verdict = f"no better than step {self.selection.best_step} ({self.wait}/{self.patience})"
      if self.wait >= self.patience and self.steps < self.budget:
        self.model.stop_training = True
        self.selection.stopped_early = True
    log.info("step %d: valid %s %.5f (%s), %s", self.steps, self.selection_metric, value,
             ", ".join(f"{name} {metrics[name]:.5f}" for name in ("auc", "logloss")
                       if name in metrics), verdict)

  def on_train_end(self, logs=None):
    self.selection.steps_trained = self.steps
    if self.best_weights is not None:
      self.model.set_weights(self.best_weights)


def fit_with_selection(model: keras.Model, train_ds, valid_ds, trainer: TrainerConfig,
                       callbacks: Optional[list] = None) -> Selection:
  """Trains `model` (compiled, with the metrics trainer.selection_metric reads: CtrModel's
  `auc` and `logloss`) on the infinite `train_ds`.

  Args:
    model: the compiled model; ends with the best validation's weights.
    train_ds: repeating batches (never exhausted within the budget).
    valid_ds: a finite dataset of the valid split, or None (no selection: the
      whole budget is trained and best_step is the budget).
    trainer: train_steps (budget), validate_every_steps, patience, validation_steps.
    callbacks: more Keras callbacks (e.g. TensorBoard).

  Returns:
    the Selection (chosen step, steps trained, validation history).

  Raises:
    ValueError: the validation logs lack a metric the selection reads.
  """
  autograph_speedup.install()  # before the first trace of a tf_keras function
  callbacks = list(callbacks or [])
  budget = trainer.train_steps
  if valid_ds is None:
    model.fit(train_ds, epochs=1, steps_per_epoch=budget, callbacks=callbacks, verbose=0)
    return Selection(best_step=budget, steps_trained=budget, budget=budget)
  every = min(trainer.validate_every_steps, budget)
  selector = BestStepCallback(budget, trainer.patience, trainer.selection_metric)
  # One epoch per validation; the budget callback ends the last, shorter one.
  model.fit(train_ds, epochs=math.ceil(budget / every), steps_per_epoch=every,
            validation_data=valid_ds, validation_steps=trainer.validation_steps,
            callbacks=[selector] + callbacks, verbose=0)
  return selector.selection
