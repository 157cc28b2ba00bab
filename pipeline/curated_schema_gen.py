"""CuratedSchemaGen: puts the project's curated schema (pipeline/schema.py) into the pipeline.

It does what ImportSchemaGen does (a reviewed schema, never inferred, becomes
the Schema artifact), but the schema travels as text in the component's
parameters instead of as a file path: the same pipeline then runs locally and
compiles for Kubeflow without writing a schema file anywhere at compile time
(pods could not read the compiling machine's disk), the text is visible in the
compiled spec and in ML Metadata, and a changed schema is a changed cache key.
The artifact holds `schema.pbtxt`, as SchemaGen's and ImportSchemaGen's do.
"""

import os
from typing import Any, Dict, List

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from pipeline.schema import SCHEMA_FILE, parse_schema, schema_text

SCHEMA_TEXT_KEY = "schema_text"
SCHEMA_KEY = "schema"


class CuratedSchemaGenSpec(types.ComponentSpec):
  PARAMETERS = {SCHEMA_TEXT_KEY: ExecutionParameter(type=str)}
  INPUTS = {}
  OUTPUTS = {SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


class Executor(base_executor.BaseExecutor):
  """Writes the schema text, checked by parsing it, as <artifact>/schema.pbtxt."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    schema = parse_schema(exec_properties[SCHEMA_TEXT_KEY])
    uri = artifact_utils.get_single_uri(output_dict[SCHEMA_KEY])
    io_utils.write_pbtxt_file(os.path.join(uri, SCHEMA_FILE), schema)


class CuratedSchemaGen(base_component.BaseComponent):
  """The given schema as the pipeline's Schema artifact (outputs['schema']).

  Args:
    schema: the curated schema (pipeline.schema.build_schema of the config).
  """
  SPEC_CLASS = CuratedSchemaGenSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

  def __init__(self, schema: schema_pb2.Schema):
    super().__init__(spec=CuratedSchemaGenSpec(
        schema_text=schema_text(schema),
        schema=types.Channel(type=standard_artifacts.Schema)))
