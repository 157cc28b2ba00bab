"""`eta ingest`: the Beam ingest run on its own, outside TFX, for inspection and benchmarks."""

import logging
import time
from typing import Dict, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from components import ingest, report, split_check
from eta_ctr.config import EtaConfig

log = logging.getLogger(__name__)


def run_ingest(config: EtaConfig, output_dir: str,
               beam_args: Optional[Sequence[str]] = None,
               min_split_examples: int = split_check.MIN_SPLIT_EXAMPLES) -> Dict:
  """Runs the ingest into output_dir and returns (and writes) the ingest report.

  beam_args are standard Beam pipeline options (e.g. --runner=FlinkRunner);
  the default is the DirectRunner in this process.

  Raises:
    components.split_check.SplitTooSmall: a split holds fewer than
      `min_split_examples` examples (raised after the examples, the dead letters
      and the report are written; 0 turns the check off, e.g. for parser tests
      on a handful of rows).
  """
  options = PipelineOptions(list(beam_args or ["--runner=DirectRunner"]))
  log.info("ingest: reading %s log from %s", config.source.format, config.source.path)
  started = time.time()
  with beam.Pipeline(options=options) as pipeline:
    outputs = pipeline | "ClickLogToExamples" >> ingest.ClickLogToExamples(config)
    ingest.write_ingest_outputs(outputs, output_dir)
  wall_time = time.time() - started
  result = report.build_report(ingest.read_stats(output_dir), wall_time, config.to_dict())
  path = report.write_report(result, output_dir)
  try:
    split_check.check_splits(result, min_split_examples)
  except split_check.SplitTooSmall as error:
    raise split_check.SplitTooSmall(
        f"{error}\nThe ingest report and the dead letters are in {output_dir}") from None
  log.info("ingest: done in %.1fs, report at %s", wall_time, path)
  return result
