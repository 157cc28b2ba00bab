"""The ClickLogExampleGen executor: runs the Beam ingest into the Examples artifact."""

import dataclasses
import json
import logging
import os
import time
from typing import Any, Dict, List

from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import formats, ingest, report, split_check
from eta_ctr.config import ETA_CONFIG_KEY, EtaConfig

log = logging.getLogger(__name__)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """Writes Split-train/, Split-valid/, Split-eval/, dead_letter/ and ingest_report.json."""

  def GetInputSourceToExamplePTransform(self):
    raise NotImplementedError("the click-log ingest splits by time in one pass; see Do")

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    config = EtaConfig.from_json(exec_properties[ETA_CONFIG_KEY])
    # The driver resolved input_base (and the span); read from there.
    config = config.replace(source=dataclasses.replace(
        config.source, path=_resolved_source_path(config, exec_properties)))
    examples = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.EXAMPLES_KEY])
    examples.split_names = artifact_utils.encode_split_names(list(config.ingest.split_names))

    log.info("ClickLogExampleGen: ingesting %s log %s", config.source.format,
             config.source.path)
    started = time.time()
    with self._make_beam_pipeline() as pipeline:
      outputs = pipeline | "ClickLogToExamples" >> ingest.ClickLogToExamples(config)
      ingest.write_ingest_outputs(outputs, examples.uri)
    result = report.build_report(ingest.read_stats(examples.uri), time.time() - started,
                                 config.to_dict())
    report.write_report(result, examples.uri)
    log.info("ClickLogExampleGen: ingest done\n%s", report.format_report(result))
    try:
      split_check.check_splits(result)
    except split_check.SplitTooSmall as error:
      kept = _keep_failed_outputs(examples.uri)
      raise split_check.SplitTooSmall(
          f"{error}\nThe ingest report and the dead letters are in {kept}") from None

    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(examples, "tfrecords_gzip")
    for key in ("rows_read", "rows_valid", "negatives_sampled", "users", "examples_total"):
      examples.set_int_custom_property(key, result[key])
    examples.set_int_custom_property("rows_rejected", result["rows_rejected"]["total"])
    examples.set_string_custom_property("ingest_report", json.dumps(
        {k: result[k] for k in ("rows_rejected", "examples", "history_length")}))


def _keep_failed_outputs(examples_uri: str) -> str:
  """Copies ingest_report.json and dead_letter/ out of the Examples artifact, which
  TFX deletes when its component fails; returns the directory they are now in:
  <pipeline root>/ClickLogExampleGen/failed_ingest/<execution id>/."""
  uri = examples_uri.rstrip("/")
  node_dir, execution = os.path.dirname(os.path.dirname(uri)), os.path.basename(uri)
  target = f"{node_dir}/failed_ingest/{execution}"
  dead_letter = f"{target}/{ingest.DEAD_LETTER_DIR}"
  fileio.makedirs(dead_letter)
  fileio.copy(f"{uri}/{report.REPORT_FILE}", f"{target}/{report.REPORT_FILE}", overwrite=True)
  for source in fileio.glob(f"{uri}/{ingest.DEAD_LETTER_DIR}/*"):
    fileio.copy(source, f"{dead_letter}/{os.path.basename(source)}", overwrite=True)
  return target


def _resolved_source_path(config: EtaConfig, exec_properties: Dict[str, Any]) -> str:
  base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
  if formats.get(config.source.format).directory_source:
    return base
  input_config = example_gen_pb2.Input()
  proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                            input_config)
  pattern = input_config.splits[0].pattern
  # Always a pattern under the base: a bucket "directory" is not os.path.isdir.
  return f"{base.rstrip('/')}/{pattern}"
