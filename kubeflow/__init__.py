"""Kubeflow deployment: the pipeline compiled to a KFP v2 spec, its image, distributed training."""
