"""TF Serving's gRPC services on grpcio, from the generated servicer base classes.

PredictionService: Predict, GetModelMetadata, Classify, Regress (MultiInference
is left UNIMPLEMENTED). ModelService: GetModelStatus.

Every handler turns a ServingError into its status code and any other
exception into INTERNAL, so no request can take a worker thread down. Requests
whose bytes do not even parse as the request proto get INVALID_ARGUMENT too:
grpcio would answer INTERNAL, so the generated handlers are registered with a
deserializer that hands the failure to the handler instead of raising.
"""

import functools
import logging
from typing import Optional

import grpc
from tensorflow_serving.apis import (classification_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2_grpc, regression_pb2)

from models import signatures as contract
from serving import protos, tensors
from serving.core import ServingCore
from serving.errors import ServingError, invalid_argument, not_found

log = logging.getLogger(__name__)


def _handled(method):
  """ServingError -> its status; anything else -> INTERNAL (logged)."""
  @functools.wraps(method)
  def wrapper(self, request, context):
    try:
      return method(self, request, context)
    except ServingError as error:
      failure = error
    except Exception as error:  # pylint: disable=broad-except
      log.exception("%s failed", method.__name__)
      failure = ServingError(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
    context.abort(failure.code, failure.message)
  return wrapper


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


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """PredictionService over a ServingCore."""

  def __init__(self, core: ServingCore):
    self._core = core

  @_handled
  def Predict(self, request, context):
    tensors.check_total_elements(request.inputs.items(), self._core.limits.max_elements)

    def decode(_specs):
      return {name: tensors.to_ndarray(name, proto) for name, proto in request.inputs.items()}

    result = self._core.predict(request.model_spec.name, _version(request.model_spec),
                                request.model_spec.signature_name, decode,
                                list(request.output_filter))
    return protos.predict_response(request.model_spec.name, result)

  @_handled
  def GetModelMetadata(self, request, context):
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

  def _scores(self, request):
    return self._core.predict_examples(request.model_spec.name, _version(request.model_spec),
                                       request.model_spec.signature_name,
                                       _examples(request.input))

  def _scored(self, request, response):
    """Click probabilities of the request's examples; fills the response's model_spec."""
    result = self._scores(request)
    protos.fill_model_spec(response.model_spec, request.model_spec.name, result.version,
                           result.signature_name)
    return result.outputs[contract.PROBABILITIES].tolist()

  @_handled
  def Classify(self, request, context):
    """Two classes per example: "0" (no click) and "1" (click) with their probabilities."""
    response = classification_pb2.ClassificationResponse()
    for probability in self._scored(request, response):
      classes = response.result.classifications.add().classes
      classes.add(label="0", score=1.0 - probability)
      classes.add(label="1", score=probability)
    return response

  @_handled
  def Regress(self, request, context):
    """The click probability of each example as its regression value."""
    response = regression_pb2.RegressionResponse()
    for probability in self._scored(request, response):
      response.result.regressions.add(value=probability)
    return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """ModelService.GetModelStatus over a ServingCore."""

  def __init__(self, core: ServingCore):
    self._core = core

  @_handled
  def GetModelStatus(self, request, context):
    return protos.status_response(
        self._core.status(request.model_spec.name, _version(request.model_spec)))


class _Undecodable:
  """Stands in for a request whose bytes did not parse."""

  def __init__(self, error: Exception):
    self.error = error


class _LenientHandlers(grpc.GenericRpcHandler):
  """Wraps the generated handlers: undecodable requests reach the handler as
  _Undecodable and are answered INVALID_ARGUMENT."""

  def __init__(self, handlers):
    self._handlers = handlers

  def service(self, handler_call_details):
    for generic in self._handlers:
      handler = generic.service(handler_call_details)
      if handler is not None:
        return self._lenient(handler, handler_call_details.method)
    return None

  @staticmethod
  def _lenient(handler, method_name):
    parse = handler.request_deserializer
    behaviour = handler.unary_unary
    if parse is None or behaviour is None:
      return handler

    message_class = getattr(parse, "__self__", None)  # parse is Message.FromString

    def deserialize(data: bytes):
      try:
        if not isinstance(message_class, type):
          return parse(data)
        message = message_class()
        consumed = message.ParseFromString(data)
      except Exception as error:  # DecodeError, or anything the C++ parser raises
        return _Undecodable(error)
      if consumed != len(data):  # the C++ parser stops early at a stray end tag
        return _Undecodable(ValueError(f"only {consumed} of {len(data)} bytes parse"))
      return message

    def unary_unary(request, context):
      if isinstance(request, _Undecodable):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"the {method_name} request is not a parseable protocol buffer "
                      f"({request.error})")
      return behaviour(request, context)

    return handler._replace(request_deserializer=deserialize, unary_unary=unary_unary)


class _Collector:
  """Receives what the generated add_*_to_server functions register."""

  def __init__(self):
    self.handlers = []

  def add_generic_rpc_handlers(self, handlers):
    self.handlers.extend(handlers)

  def add_registered_method_handlers(self, service_name, method_handlers):
    self.handlers.append(grpc.method_handlers_generic_handler(service_name, method_handlers))


def add_services(server: grpc.Server, core: ServingCore):
  """Registers PredictionService and ModelService for `core` on `server`."""
  collector = _Collector()
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionServicer(core), collector)
  model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), collector)
  server.add_generic_rpc_handlers((_LenientHandlers(collector.handlers),))
