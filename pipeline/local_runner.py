"""Runs the pipeline locally: LocalDagRunner, Beam DirectRunner, SQLite ML Metadata."""

import os
from typing import List, Optional

from tfx import v1 as tfx

from eta_ctr.config import EtaConfig
from pipeline.pipeline import create_pipeline

METADATA_FILE = "metadata.sqlite"


def run_local(config: EtaConfig, pipeline_root: str, serving_dir: str,
              pipeline_name: str = "eta_ctr", beam_pipeline_args: Optional[List[str]] = None,
              **pipeline_kwargs):
  os.makedirs(pipeline_root, exist_ok=True)
  metadata_config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
      os.path.join(pipeline_root, METADATA_FILE))
  pipeline = create_pipeline(config, pipeline_name, pipeline_root, serving_dir,
                             metadata_connection_config=metadata_config,
                             beam_pipeline_args=beam_pipeline_args, **pipeline_kwargs)
  tfx.orchestration.LocalDagRunner().run(pipeline)
  return pipeline
