"""Ingest: click logs -> point-in-time tf.Examples (Beam, and a TFX ExampleGen)."""
