"""ClickLogExampleGen: the Beam ingest as a TFX ExampleGen component."""

from components.example_gen.component import ClickLogExampleGen

__all__ = ["ClickLogExampleGen"]
