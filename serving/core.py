"""The serving operations, independent of gRPC or REST.

Each takes already-parsed request fields and either returns a result or raises
ServingError. Transports only translate: protos or JSON in, status codes out.
"""

import dataclasses
import logging
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf

from models import signatures
from serving import validation
from serving.batching import Batcher
from serving.errors import from_model_error, invalid_argument, not_found
from serving.manager import UNKNOWN, ModelManager, VersionStatus
from serving.limits import Limits

log = logging.getLogger(__name__)

# decode(input specs of the signature) -> {input name: ndarray}
Decoder = Callable[[Mapping[str, tf.TensorSpec]], Dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Prediction:
  version: int
  signature_name: str
  outputs: Dict[str, np.ndarray]


class ServingCore:
  """Predict, metadata and status for one named model."""

  def __init__(self, model_name: str, manager: ModelManager, limits: Limits = Limits(),
               batcher: Optional[Batcher] = None):
    self.model_name = model_name
    self.manager = manager
    self.limits = limits
    self.batcher = batcher

  def _check_model(self, name: str):
    if name != self.model_name:
      raise not_found(f"model '{name}' is not served here (this server serves "
                      f"'{self.model_name}')")

  def predict(self, model_name: str, version: Optional[int], signature_name: str,
              decode: Decoder, output_filter: Sequence[str] = ()) -> Prediction:
    self._check_model(model_name)
    signature_name = signature_name or signatures.DEFAULT_SIGNATURE
    with self.manager.acquire(version) as servable:
      specs = servable.input_specs.get(signature_name)
      if specs is None:
        raise not_found(f"signature '{signature_name}' not found in version "
                        f"{servable.version}; it has {servable.signature_names}")
      inputs = decode(specs)
      # Before any batching: a malformed request fails alone, never its batch.
      validation.check_request(specs, inputs, self.limits, servable.features)
      known = servable.output_names[signature_name]
      unknown = sorted(set(output_filter) - set(known))
      if unknown:
        raise invalid_argument(f"output_filter names {unknown}, which signature "
                               f"'{signature_name}' does not have; it has {known}")
      try:
        if self.batcher is not None and self.batcher.batches(signature_name):
          outputs = self.batcher.run(servable, signature_name, inputs)
        else:
          outputs = servable.run(signature_name, inputs)
      except Exception as error:  # the model refusing the input, or worse
        failure = from_model_error(error)
        if failure.code == grpc.StatusCode.INTERNAL:
          log.exception("signature '%s' of version %d failed", signature_name,
                        servable.version)
        raise failure from None
      if output_filter:
        outputs = {name: outputs[name] for name in output_filter}
      return Prediction(servable.version, signature_name, outputs)

  def predict_examples(self, model_name: str, version: Optional[int], signature_name: str,
                       serialized: List[bytes]) -> Prediction:
    """Classify / Regress: one score per tf.Example, from a signature that takes
    serialized examples and returns one value per example."""
    def decode(specs):
      strings = [n for n, spec in specs.items() if spec.dtype == tf.string and spec.shape.rank == 1]
      if len(specs) != 1 or not strings:
        raise invalid_argument(f"signature '{signature_name or signatures.DEFAULT_SIGNATURE}' "
                               "does not take serialized tf.Examples alone")
      array = np.empty(len(serialized), dtype=object)
      array[:] = serialized
      return {strings[0]: array}

    result = self.predict(model_name, version, signature_name, decode)
    outputs = result.outputs
    name = signatures.PROBABILITIES if signatures.PROBABILITIES in outputs else (
        next(iter(outputs)) if len(outputs) == 1 else None)
    if name is None or outputs[name].shape != (len(serialized),):
      raise invalid_argument(f"signature '{result.signature_name}' does not return one "
                             "score per example")
    return dataclasses.replace(result, outputs={signatures.PROBABILITIES: outputs[name]})

  def metadata(self, model_name: str, version: Optional[int]):
    """(version, {signature name: SignatureDef}) of the served version."""
    self._check_model(model_name)
    with self.manager.acquire(version) as servable:
      return servable.version, dict(servable.signature_defs)

  def status(self, model_name: str, version: Optional[int]) -> List[VersionStatus]:
    self._check_model(model_name)
    statuses = self.manager.statuses()
    if version is not None:
      statuses = [s for s in statuses if s.version == version]
      if not statuses:
        raise not_found(f"version {version} of model '{model_name}' is not known")
    if not statuses:
      return [VersionStatus(0, UNKNOWN, f"no version under {self.manager.base_path} yet")]
    return statuses

