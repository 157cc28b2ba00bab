"""Transform preprocessing, Keras layers, CTR models and the TFX trainer."""

from models import autograph_speedup as _autograph_speedup

_autograph_speedup.install()
