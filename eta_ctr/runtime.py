"""What a process needs before TensorFlow is imported, in one place.

tf.Transform (its `TransformFeaturesLayer`) and tensorflow-recommenders are
Keras 2 code, so `tf.keras` must resolve to `tf_keras`: TensorFlow 2.16 decides
that from `TF_USE_LEGACY_KERAS` when `tf.keras` is first touched, which TFX
does at import. So every entry point calls `prepare()` first thing:

  - the `eta` command (eta_ctr/cli.py) and every `python -m` entry point;
  - Beam workers of the DirectRunner (in process, or its subprocesses, which
    inherit the environment); other runners' workers run the project image,
    whose Dockerfile sets the same variables;
  - the KFP containers (stock TFX entry points) run that image too.

Library code that needs Keras 2 (`preprocessing_fn`, `run_fn`) calls
`require_legacy_keras()`, which fails at once with what to do when a caller's
own process imported TensorFlow without the variable.

This module imports nothing heavy and changes nothing on import.
"""

import os
import sys

LEGACY_KERAS_ENV = "TF_USE_LEGACY_KERAS"
TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
# 3 hides the C++ INFO/WARNING/ERROR start-up lines (CUDA factory registration
# on CPU machines is logged at ERROR before Python can filter it).
QUIET_TF_LOG_LEVEL = "3"

FIX = (f"set {LEGACY_KERAS_ENV}=1 in the environment before Python starts "
       f"(e.g. `export {LEGACY_KERAS_ENV}=1`), or call eta_ctr.runtime.prepare() "
       "before anything imports TensorFlow")


class KerasVersionError(RuntimeError):
  """TensorFlow was imported with Keras 3 as tf.keras; this project needs Keras 2."""


def prepare(quiet_tensorflow: bool = True) -> None:
  """Sets the environment TensorFlow reads at import: Keras 2 as `tf.keras` and,
  unless the user chose a level, no C++ start-up chatter.

  Raises:
    KerasVersionError: TensorFlow is already imported and resolved tf.keras to
      Keras 3 (too late to change).
  """
  if os.environ.get(LEGACY_KERAS_ENV, "") in ("", "0", "false", "False"):
    os.environ[LEGACY_KERAS_ENV] = "1"
  if quiet_tensorflow:
    os.environ.setdefault(TF_LOG_LEVEL_ENV, QUIET_TF_LOG_LEVEL)
  if "tensorflow" in sys.modules:
    require_legacy_keras()


def require_legacy_keras() -> None:
  """Raises KerasVersionError unless `tf.keras` is Keras 2 (tf_keras).

  Importing TensorFlow here is fine: whoever calls this needs it anyway.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  if tf.keras.layers.Layer is not tf_keras.layers.Layer:
    raise KerasVersionError(
        f"TensorFlow's tf.keras is {tf.keras.__name__}, not tf_keras (Keras 2), which "
        f"tf.Transform and tensorflow-recommenders need: {FIX}")
