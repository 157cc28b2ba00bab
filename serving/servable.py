"""One loaded version: its signatures, their input specs and SignatureDefs.

Model paths may be any TF file system (gs://... too): files are read through
tf.io.gfile, never open().
"""

import logging
import os
from typing import Dict, List, Mapping, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from models import signatures
from models.layers.kernels import fused_ops

log = logging.getLogger(__name__)

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
    if any(node.op in fused_ops.OP_NAMES for node in graph.node):
      return True
    if any(node.op in fused_ops.OP_NAMES
           for function in graph.library.function for node in function.node_def):
      return True
  return False


def uses_fused_kernel(path: str) -> bool:
  """Whether the SavedModel at path calls a fused op (fused_ops.OP_NAMES)."""
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


def _plain(value: np.ndarray):
  """What converts fastest: a list for a 1-D array of Python objects (bytes),
  which TensorFlow reads faster than the object array; the array otherwise."""
  if value.dtype == object and value.ndim == 1:
    return value.tolist()
  return value


class _Call:
  """One signature, resolved once at load: its flat argument order and captured
  resources, so that a request calls the underlying function directly.

  ConcreteFunction.__call__ re-binds and type-checks the keyword arguments
  against the structured signature on every call (about half a millisecond of
  Python); requests are already validated against the same specs, so the flat
  call is enough. It relies on TensorFlow internals (`_inference_function`,
  `_arg_keywords`; TF 2.16): when they are missing, or do not line up with the
  specs, the public call is used instead.
  """

  def __init__(self, function, specs: Mapping[str, tf.TensorSpec]):
    self.function = function
    self.dtypes = {name: spec.dtype for name, spec in specs.items()}
    self._flat = None
    try:
      atomic = function._inference_function  # pylint: disable=protected-access
      names = [str(name) for name in function._arg_keywords]  # pylint: disable=protected-access
      if any(callable(c) for c in function._captured_inputs):  # pylint: disable=protected-access
        return  # deferred captures are resolved per call
      captured = list(function.captured_inputs)
      arity = len(atomic.cached_definition.signature.input_arg)
    except Exception:  # pylint: disable=broad-except  (another TF version)
      return
    if sorted(names) == sorted(specs) and arity == len(names) + len(captured):
      self._flat = (atomic, names, captured)

  @property
  def direct(self) -> bool:
    return self._flat is not None

  def __call__(self, tensors: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    flat = self._flat
    if flat is not None:
      atomic, names, captured = flat
      try:
        return atomic.call_preflattened([tensors[name] for name in names] + captured)
      except (TypeError, AttributeError) as error:  # internals not as expected: stop using them
        log.warning("calling a signature directly failed (%s: %s); using the public call",
                    type(error).__name__, error)
        self._flat = None
    return self.function(**tensors)


class Servable:
  """A loaded version. `in_flight` is owned by the ModelManager (under its lock).

  `features`: the side features (FeatureSpecs) the export declares, whose
  values requests carry (serving/validation.py checks them by the ingest's rules).
  """

  def __init__(self, version: int, path: str, model,
               signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
               features: Sequence = ()):
    self.version = version
    self.path = path
    self.features = tuple(features)
    self.in_flight = 0
    self._model = model
    self._signatures = dict(model.signatures)
    self.input_specs: Dict[str, Dict[str, tf.TensorSpec]] = {}
    self.output_names: Dict[str, List[str]] = {}
    self._calls: Dict[str, _Call] = {}
    for name, function in self._signatures.items():
      args, kwargs = function.structured_input_signature
      if args:  # signatures are keyword-only; anything else cannot be served by name
        continue
      self.input_specs[name] = dict(kwargs)
      self.output_names[name] = sorted(function.structured_outputs)
      self._calls[name] = _Call(function, self.input_specs[name])
    self.signature_defs = dict(signature_defs)

  @classmethod
  def load(cls, path: str, version: int) -> "Servable":
    saved_model = read_saved_model(path)
    if _calls_fused_kernel(saved_model) and fused_ops.load() is None:
      raise RuntimeError(f"{path} uses the fused ops {fused_ops.OP_NAMES}, which could not be "
                         "built here; export with retrieval_kernel='stock'")
    features = signatures.read_features(path)
    model = tf.saved_model.load(path, tags=[SERVE_TAG])
    return cls(version, path, model, _serving_signature_defs(saved_model, path), features)

  @property
  def signature_names(self) -> List[str]:
    return sorted(self.input_specs)

  # run() = to_tensors(), call(), fetch(): separate so that serving/request_profile.py
  # can time each step of exactly what a request runs.

  def to_tensors(self, signature: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, tf.Tensor]:
    """Validated inputs -> eager tensors of the signature's dtypes (one copy each)."""
    dtypes = self._calls[signature].dtypes
    return {name: tf.constant(_plain(value), dtypes[name]) for name, value in inputs.items()}

  def call(self, signature: str, tensors: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    return self._calls[signature](tensors)

  @staticmethod
  def fetch(outputs: Mapping[str, tf.Tensor]) -> Dict[str, np.ndarray]:
    return {name: tensor.numpy() for name, tensor in outputs.items()}

  def run(self, signature: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Calls one signature on validated inputs; concrete functions are thread-safe."""
    return self.fetch(self.call(signature, self.to_tensors(signature, inputs)))

  def close(self):
    """Drops the model so its memory can be reclaimed once no request holds it."""
    self._signatures = {}
    self._calls = {}
    self._model = None
