"""One loaded version: its signatures, their input specs and SignatureDefs.

Model paths may be any TF file system (gs://... too): files are read through
tf.io.gfile, never open().
"""

import os
from typing import Dict, List, Mapping

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from models.layers.kernels import fused_ops

SERVE_TAG = "serve"


def read_saved_model(path: str) -> saved_model_pb2.SavedModel:
  """The SavedModel proto of the export at path (saved_model.pb, else .pbtxt)."""
  saved_model = saved_model_pb2.SavedModel()
  binary = os.path.join(path, "saved_model.pb")
  if tf.io.gfile.exists(binary):
    with tf.io.gfile.GFile(binary, "rb") as handle:
      saved_model.ParseFromString(handle.read())
  else:
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pbtxt"), "r") as handle:
      text_format.Parse(handle.read(), saved_model)
  return saved_model


def _calls_fused_kernel(saved_model: saved_model_pb2.SavedModel) -> bool:
  for meta_graph in saved_model.meta_graphs:
    graph = meta_graph.graph_def
    if any(node.op == fused_ops.OP_NAME for node in graph.node):
      return True
    if any(node.op == fused_ops.OP_NAME
           for function in graph.library.function for node in function.node_def):
      return True
  return False


def uses_fused_kernel(path: str) -> bool:
  """Whether the SavedModel at path calls the fused Hamming top-k op."""
  return _calls_fused_kernel(read_saved_model(path))


def _serving_signature_defs(saved_model: saved_model_pb2.SavedModel,
                            path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
  for meta_graph in saved_model.meta_graphs:
    if SERVE_TAG in meta_graph.meta_info_def.tags:
      return dict(meta_graph.signature_def)
  raise ValueError(f"{path} has no MetaGraph tagged '{SERVE_TAG}'")


def read_signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
  """The serving MetaGraph's SignatureDefs, as TF Serving's GetModelMetadata returns them."""
  return _serving_signature_defs(read_saved_model(path), path)


class Servable:
  """A loaded version. `in_flight` is owned by the ModelManager (under its lock)."""

  def __init__(self, version: int, path: str, model,
               signature_defs: Mapping[str, meta_graph_pb2.SignatureDef]):
    self.version = version
    self.path = path
    self.in_flight = 0
    self._model = model
    self._signatures = dict(model.signatures)
    self.input_specs: Dict[str, Dict[str, tf.TensorSpec]] = {}
    self.output_names: Dict[str, List[str]] = {}
    for name, function in self._signatures.items():
      args, kwargs = function.structured_input_signature
      if args:  # signatures are keyword-only; anything else cannot be served by name
        continue
      self.input_specs[name] = dict(kwargs)
      self.output_names[name] = sorted(function.structured_outputs)
    self.signature_defs = dict(signature_defs)

  @classmethod
  def load(cls, path: str, version: int) -> "Servable":
    saved_model = read_saved_model(path)
    if _calls_fused_kernel(saved_model) and fused_ops.load() is None:
      raise RuntimeError(f"{path} uses the fused {fused_ops.OP_NAME} op, which could not be "
                         "built here; export with retrieval_kernel='stock'")
    model = tf.saved_model.load(path, tags=[SERVE_TAG])
    return cls(version, path, model, _serving_signature_defs(saved_model, path))

  @property
  def signature_names(self) -> List[str]:
    return sorted(self.input_specs)

  def run(self, signature: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Calls one signature on validated inputs; concrete functions are thread-safe."""
    specs = self.input_specs[signature]
    tensors = {name: tf.convert_to_tensor(value, dtype=specs[name].dtype)
               for name, value in inputs.items()}
    outputs = self._signatures[signature](**tensors)
    return {name: tensor.numpy() for name, tensor in outputs.items()}

  def close(self):
    """Drops the model so its memory can be reclaimed once no request holds it."""
    self._signatures = {}
    self._model = None
