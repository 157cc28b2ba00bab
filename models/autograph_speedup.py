"""Skip autograph conversion of tf_keras internals.

TF 2.16's autograph skip list names `keras` but not `tf_keras`, so the first
trace of a tf_keras train/predict function converts ~800 library functions:
15-17 s per process on 2 cores (see shared/STACK_NOTES.md). tf_keras code is
already graph-safe, so it is added to the skip list. This touches a private TF
module; it is isolated here, and `autograph_speedup_test.py` fails if the
private API moves.
"""

from tensorflow.python.autograph.core import config as _autograph_config

_RULE = _autograph_config.DoNotConvert("tf_keras")


def install() -> bool:
  """Adds the rule once; returns True if it is in effect."""
  rules = _autograph_config.CONVERSION_RULES
  if not any(getattr(rule, "_prefix", None) == "tf_keras" for rule in rules):
    _autograph_config.CONVERSION_RULES = (_RULE,) + tuple(rules)
  return is_installed()


def is_installed() -> bool:
  return any(getattr(rule, "_prefix", None) == "tf_keras"
             for rule in _autograph_config.CONVERSION_RULES)
