"""ClickLogExampleGen: a file-based TFX ExampleGen that builds point-in-time histories.

It keeps the stock FileBasedExampleGen driver, so the input files' fingerprint
and span decide caching exactly as for CsvExampleGen, and the stock Examples
artifact layout (Split-train/, Split-valid/, Split-eval/; no Split-valid/ with
IngestConfig.valid_fraction 0), so every downstream TFX component
reads it unchanged. Next to the splits, the artifact directory holds
dead_letter/ and ingest_report.json, and the artifact carries the row counts as
custom properties (visible in ML Metadata).
"""

import os
from typing import Optional

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components import formats
from components.example_gen import executor
from eta_ctr.config import ETA_CONFIG_KEY, EtaConfig


class ClickLogExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
  """FileBasedExampleGen's spec plus the project configuration as JSON."""
  PARAMETERS = {
      **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
      ETA_CONFIG_KEY: ExecutionParameter(type=str),
  }


def _input_base_and_pattern(path: str, fmt: str):
  """Splits a source path into the driver's input_base and file pattern."""
  click_log_format = formats.get(fmt)
  if click_log_format.directory_source:  # e.g. MovieLens: its ratings and items files
    return path, click_log_format.input_pattern
  if os.path.isdir(path) or path.endswith("/"):  # a local or bucket directory
    return path.rstrip("/"), click_log_format.input_pattern
  return os.path.dirname(path) or ".", os.path.basename(path)


class ClickLogExampleGen(FileBasedExampleGen):
  """Click log -> train/valid/eval tf.Examples with each user's earlier behaviours.

  Args:
    config: the project configuration; `config.source` names the log and
      `config.ingest` how histories and splits are built.
  """
  SPEC_CLASS = ClickLogExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, config: EtaConfig, input_base: Optional[str] = None):
    base, pattern = _input_base_and_pattern(config.source.path, config.source.format)
    input_config = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="click_log", pattern=pattern)])
    # The output splits are chronological and made by the executor; this config
    # only names them for downstream components.
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=split, hash_buckets=1)
        for split in config.ingest.split_names]))
    spec = ClickLogExampleGenSpec(
        input_base=input_base or base,
        input_config=input_config,
        output_config=output_config,
        output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
        output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        eta_config=config.to_json(),
        examples=self._examples_channel())
    # Skip FileBasedExampleGen.__init__, which would build its own spec.
    super(FileBasedExampleGen, self).__init__(spec=spec)

  @staticmethod
  def _examples_channel():
    from tfx import types
    from tfx.types import standard_artifacts
    return types.Channel(type=standard_artifacts.Examples)
