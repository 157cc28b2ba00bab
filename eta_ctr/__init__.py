"""eta-ctr: a TFX pipeline for CTR prediction over long user-behaviour sequences (ETA)."""

__version__ = "0.1.0"
