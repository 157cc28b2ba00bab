"""ValidationGate: stops the run on blocking anomalies, passes the schema on otherwise.

Between ExampleValidator and Transform. It reads ExampleValidator's anomalies of
every split (pipeline/anomalies.py sorts them):

- any blocking one raises DataValidationError, which names each anomaly (split,
  feature, TFDV's description and type), so Transform never starts;
- otherwise it copies the schema to its `validated_schema` output, which Transform
  and the Trainer read (so they run only after the gate passed), and records
  the drift (non-blocking anomalies, and eval against train: pipeline/drift.py)
  in that artifact's `drift` custom property (a JSON list of lines, in ML
  Metadata); the run summary shows them.

A plain component with an importable executor, so LocalDagRunner and the
Kubeflow V2 compile run the same gate.
"""

import json
import os
from typing import Any, Dict, List

from tensorflow_data_validation.utils import anomalies_util
from tfx import types
from tfx.components.example_validator import executor as example_validator_executor
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.utils import io_utils

from components import events
from pipeline import anomalies as anomaly_rules
from pipeline.drift import split_drift
from pipeline.schema import SCHEMA_FILE

STATISTICS_KEY, ANOMALIES_KEY, SCHEMA_KEY = "statistics", "anomalies", "schema"
VALIDATED_SCHEMA_KEY = "validated_schema"
DRIFT_PROPERTY = "drift"


class ValidationGateSpec(types.ComponentSpec):
  PARAMETERS = {}
  INPUTS = {
      STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
      ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
      SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
  }
  OUTPUTS = {VALIDATED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}


# Splits every run has (valid only with IngestConfig.valid_fraction > 0).
REQUIRED_SPLITS = (events.SPLIT_TRAIN, events.SPLIT_EVAL)


def read_findings(anomalies: types.Artifact, schema) -> List[anomaly_rules.Finding]:
  """The classified anomalies of every split of an ExampleAnomalies artifact.

  A split every run needs (train, eval) that has no anomalies file is itself
  a blocking finding.
  """
  splits = artifact_utils.decode_split_names(anomalies.split_names)
  findings = []
  for split in REQUIRED_SPLITS:
    if split not in splits:
      findings.append(anomaly_rules.Finding(split, anomaly_rules.DATASET, "NOT_VALIDATED",
                                            "ExampleValidator did not check this split", True))
  for split in splits:
    path = os.path.join(artifact_utils.get_split_uri([anomalies], split),
                        example_validator_executor.DEFAULT_FILE_NAME)
    findings += anomaly_rules.classify(anomalies_util.load_anomalies_binary(path), schema,
                                       split)
  return findings


class Executor(base_executor.BaseExecutor):
  """Raises DataValidationError on blocking anomalies; else schema + drift out."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    schema_file = io_utils.get_only_uri_in_dir(
        artifact_utils.get_single_uri(input_dict[SCHEMA_KEY]))
    schema = io_utils.SchemaReader().read(schema_file)
    anomalies = artifact_utils.get_single_instance(input_dict[ANOMALIES_KEY])
    findings = read_findings(anomalies, schema)
    if any(finding.blocking for finding in findings):
      raise anomaly_rules.DataValidationError(findings, anomalies.uri)

    statistics = artifact_utils.get_single_instance(input_dict[STATISTICS_KEY])
    train, eval_ = (stats_artifact_utils.load_statistics(statistics, split).proto()
                    for split in (events.SPLIT_TRAIN, events.SPLIT_EVAL))
    drift = [str(finding) for finding in findings] + split_drift(train, eval_, schema)

    output = artifact_utils.get_single_instance(output_dict[VALIDATED_SCHEMA_KEY])
    # The schema file alone: Transform reads the only file of a Schema artifact.
    fileio.copy(schema_file, os.path.join(output.uri, SCHEMA_FILE), overwrite=True)
    output.set_string_custom_property(DRIFT_PROPERTY, json.dumps(drift))


class ValidationGate(base_component.BaseComponent):
  """ExampleValidator's verdict enforced: outputs['validated_schema'] exists only for
  valid data.

  Args:
    statistics: StatisticsGen's ExampleStatistics (train, [valid,] eval).
    anomalies: ExampleValidator's ExampleAnomalies of those statistics.
    schema: the schema they were validated against.
  """
  SPEC_CLASS = ValidationGateSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

  def __init__(self, statistics: types.BaseChannel, anomalies: types.BaseChannel,
               schema: types.BaseChannel):
    super().__init__(spec=ValidationGateSpec(
        statistics=statistics, anomalies=anomalies, schema=schema,
        validated_schema=types.Channel(type=standard_artifacts.Schema)))
