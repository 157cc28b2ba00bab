"""The tf_keras autograph skip rule is installed and actually skips tf_keras."""

from tensorflow.python.autograph.impl import conversion
import tf_keras as keras

from models import autograph_speedup


def test_rule_is_installed_and_tf_keras_is_not_converted():
  assert autograph_speedup.install()
  assert autograph_speedup.install()  # idempotent
  assert conversion.is_allowlisted(keras.layers.Dense.call)
