"""TF Serving's response protos, built once for gRPC and for the REST JSON."""

from typing import Iterable, Mapping, Optional

import grpc
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from serving import tensors
from serving.core import Prediction
from serving.manager import VersionStatus

SIGNATURE_DEF = "signature_def"


def fill_model_spec(target, name: str, version: int, signature_name: str = ""):
  target.name = name
  target.version.value = version
  if signature_name:
    target.signature_name = signature_name


def predict_response(model_name: str, result: Prediction) -> predict_pb2.PredictResponse:
  response = predict_pb2.PredictResponse()
  fill_model_spec(response.model_spec, model_name, result.version, result.signature_name)
  for name, value in result.outputs.items():
    tensors.fill_proto(response.outputs[name], value)  # in place: no proto copied
  return response


def metadata_response(model_name: str, version: int,
                      defs: Mapping[str, meta_graph_pb2.SignatureDef]
                      ) -> get_model_metadata_pb2.GetModelMetadataResponse:
  """The SignatureDefMap packed under metadata['signature_def'], as TF Serving does."""
  signature_map = get_model_metadata_pb2.SignatureDefMap()
  for name, signature in defs.items():
    signature_map.signature_def[name].CopyFrom(signature)
  response = get_model_metadata_pb2.GetModelMetadataResponse()
  fill_model_spec(response.model_spec, model_name, version)
  response.metadata[SIGNATURE_DEF].Pack(signature_map)
  return response


def status_response(statuses: Iterable[VersionStatus]
                    ) -> get_model_status_pb2.GetModelStatusResponse:
  response = get_model_status_pb2.GetModelStatusResponse()
  for status in statuses:
    entry = response.model_version_status.add(version=status.version)
    entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
    entry.status.SetInParent()  # TF Serving always sends it: error_code OK when fine
    if status.error:
      entry.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
      entry.status.error_message = status.error
  return response


def unpack_signature_defs(response: get_model_metadata_pb2.GetModelMetadataResponse,
                          ) -> Optional[get_model_metadata_pb2.SignatureDefMap]:
  """The client side of metadata_response."""
  if SIGNATURE_DEF not in response.metadata:
    return None
  signature_map = get_model_metadata_pb2.SignatureDefMap()
  response.metadata[SIGNATURE_DEF].Unpack(signature_map)
  return signature_map
