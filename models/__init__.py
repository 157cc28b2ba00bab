"""Transform preprocessing, Keras layers, CTR models and the TFX trainer."""
