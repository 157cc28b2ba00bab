"""TF Serving's gRPC services on grpcio's public generic-handler API.

PredictionService: Predict, GetModelMetadata, Classify, Regress (MultiInference
answers UNIMPLEMENTED). ModelService: GetModelStatus (HandleReloadConfigRequest
answers UNIMPLEMENTED: the model directory is polled instead).

The handlers are built from the service descriptors of the generated *_pb2
modules (service and method names, request and response types), so the stock
PredictionServiceStub and ModelServiceStub talk to them unchanged. Each handler

  - parses the request bytes itself: bytes that are not the request proto get
    INVALID_ARGUMENT (grpcio answers INTERNAL when a deserializer raises);
  - turns a ServingError into its status code and any other exception into
    INTERNAL (logged), so no request can take a worker thread down.

A servicer answers an RPC with the method of the same name, request -> response.
"""

import logging
from typing import Callable, List, Optional

import grpc
from google.protobuf import descriptor, message, symbol_database
from tensorflow_serving.apis import (classification_pb2, model_service_pb2,
                                     prediction_service_pb2, regression_pb2)

from models import signatures
from serving import protos, tensors, validation
from serving.core import ServingCore
from serving.errors import ServingError, invalid_argument, not_found

log = logging.getLogger(__name__)

PREDICTION_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"]
MODEL_SERVICE = model_service_pb2.DESCRIPTOR.services_by_name["ModelService"]

Behaviour = Callable[[message.Message], message.Message]


def _version(model_spec) -> Optional[int]:
  if model_spec.WhichOneof("version_choice") == "version_label":
    raise not_found(f"version label '{model_spec.version_label}' is unknown; this server "
                    "has no version labels (ask by model_spec.version)")
  return model_spec.version.value if model_spec.HasField("version") else None


def _examples(request_input) -> list:
  kind = request_input.WhichOneof("kind")
  if kind == "example_list":
    return [e.SerializeToString() for e in request_input.example_list.examples]
  if kind == "example_list_with_context":
    context = request_input.example_list_with_context.context
    merged = []
    for example in request_input.example_list_with_context.examples:
      combined = type(example)()
      combined.CopyFrom(context)
      combined.MergeFrom(example)
      merged.append(combined.SerializeToString())
    return merged
  raise invalid_argument("the request's input holds no examples")


def decode_inputs(request) -> dict:
  """A PredictRequest's input TensorProtos -> {name: ndarray} (after
  tensors.check_total_elements has bounded their declared sizes)."""
  return {name: tensors.to_ndarray(name, proto) for name, proto in request.inputs.items()}


class PredictionServicer:
  """PredictionService over a ServingCore."""

  def __init__(self, core: ServingCore):
    self._core = core

  def Predict(self, request):
    tensors.check_total_elements(request.inputs.items(), self._core.limits.max_elements)

    def decode(_specs):  # once the model, version and signature are known
      return decode_inputs(request)

    result = self._core.predict(request.model_spec.name, _version(request.model_spec),
                                request.model_spec.signature_name, decode,
                                list(request.output_filter))
    return protos.predict_response(request.model_spec.name, result)

  def GetModelMetadata(self, request):
    fields = list(request.metadata_field)
    if not fields:
      raise invalid_argument("GetModelMetadataRequest must name at least one metadata_field "
                             f"('{protos.SIGNATURE_DEF}')")
    unsupported = sorted(set(fields) - {protos.SIGNATURE_DEF})
    if unsupported:
      raise invalid_argument(f"metadata_field {unsupported} is not supported; only "
                             f"'{protos.SIGNATURE_DEF}'")
    version, defs = self._core.metadata(request.model_spec.name, _version(request.model_spec))
    return protos.metadata_response(request.model_spec.name, version, defs)

  def _scored(self, request, response):
    """Click probabilities of the request's examples; fills the response's model_spec."""
    result = self._core.predict_examples(request.model_spec.name, _version(request.model_spec),
                                         request.model_spec.signature_name,
                                         _examples(request.input))
    protos.fill_model_spec(response.model_spec, request.model_spec.name, result.version,
                           result.signature_name)
    return result.outputs[signatures.PROBABILITIES].tolist()

  def Classify(self, request):
    """Two classes per example: "0" (no click) and "1" (click) with their probabilities."""
    response = classification_pb2.ClassificationResponse()
    for probability in self._scored(request, response):
      classes = response.result.classifications.add().classes
      classes.add(label="0", score=1.0 - probability)
      classes.add(label="1", score=probability)
    return response

  def Regress(self, request):
    """The click probability of each example as its regression value."""
    response = regression_pb2.RegressionResponse()
    for probability in self._scored(request, response):
      response.result.regressions.add(value=probability)
    return response


class ModelServicer:
  """ModelService.GetModelStatus over a ServingCore."""

  def __init__(self, core: ServingCore):
    self._core = core

  def GetModelStatus(self, request):
    return protos.status_response(
        self._core.status(request.model_spec.name, _version(request.model_spec)))


class _Undecodable:
  """Stands in for a request whose bytes did not parse."""

  def __init__(self, error: Exception):
    self.error = error


def _message_class(message_type: descriptor.Descriptor):
  """The generated class of a message type (registered when its _pb2 module loaded)."""
  return symbol_database.Default().GetSymbol(message_type.full_name)


def deserializer(request_class):
  """bytes -> request, or _Undecodable: never raises, so the handler decides the status."""

  def deserialize(data: bytes):
    request = request_class()
    try:
      consumed = validation.parse_whole(request, data)
    except Exception as error:  # DecodeError, or anything the C++ parser raises
      return _Undecodable(error)
    if consumed != len(data):  # the C++ parser stops early at a stray end-group tag
      return _Undecodable(ValueError(f"only {consumed} of {len(data)} bytes parse"))
    return request

  return deserialize


def _method_handler(method: descriptor.MethodDescriptor,
                    behaviour: Optional[Behaviour]) -> grpc.RpcMethodHandler:
  """A unary-unary handler for `method`; UNIMPLEMENTED when behaviour is None."""
  rpc = f"{method.containing_service.name}.{method.name}"

  def handle(request, context: grpc.ServicerContext):
    if isinstance(request, _Undecodable):
      failure = invalid_argument(f"the {rpc} request is not a parseable protocol buffer "
                                 f"({request.error})")
    elif behaviour is None:
      failure = ServingError(grpc.StatusCode.UNIMPLEMENTED, f"{rpc} is not served here")
    else:
      try:
        return behaviour(request)
      except ServingError as error:
        failure = error
      except Exception as error:  # pylint: disable=broad-except
        log.exception("%s failed", rpc)
        failure = ServingError(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
    context.abort(failure.code, failure.message)

  return grpc.unary_unary_rpc_method_handler(
      handle, request_deserializer=deserializer(_message_class(method.input_type)),
      response_serializer=_message_class(method.output_type).SerializeToString)


def generic_handler(service: descriptor.ServiceDescriptor,
                    servicer) -> grpc.GenericRpcHandler:
  """Every method of `service`, answered by the servicer's method of the same name."""
  return grpc.method_handlers_generic_handler(service.full_name, {
      method.name: _method_handler(method, getattr(servicer, method.name, None))
      for method in service.methods})


def handlers(core: ServingCore) -> List[grpc.GenericRpcHandler]:
  return [generic_handler(PREDICTION_SERVICE, PredictionServicer(core)),
          generic_handler(MODEL_SERVICE, ModelServicer(core))]


def add_services(server: grpc.Server, core: ServingCore):
  """Registers PredictionService and ModelService for `core` on `server`."""
  server.add_generic_rpc_handlers(handlers(core))
