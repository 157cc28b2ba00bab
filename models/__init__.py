"""Keras models and layers for ETA (End-to-end Target Attention) CTR prediction."""
