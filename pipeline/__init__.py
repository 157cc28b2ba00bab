"""The TFX pipeline: wiring (pipeline.py) and runners (local_runner.py)."""
