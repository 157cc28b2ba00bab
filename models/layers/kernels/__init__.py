"""Compiled TensorFlow kernels; see fused_ops.py."""
