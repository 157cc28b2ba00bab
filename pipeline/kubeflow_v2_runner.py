"""Compiles the pipeline of `eta run` into a Kubeflow Pipelines v2 spec.

The same `create_pipeline` is compiled by TFX's KubeflowV2DagRunner: every
component runs in one project image (see kubeflow/Dockerfile) through
`python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`.
preprocessing_fn and run_fn are import paths into that image, so compiling
builds no module-file wheel, needs no writable pipeline root and never reads the
click log: the spec can be compiled on a laptop and run on a cluster.

  .yaml / .yml  the PipelineSpec: what `kfp.Client().create_run_from_pipeline_package`
                and Vertex AI `PipelineJob(template_path=...)` take
  .json         the PipelineJob (PipelineSpec + runtimeConfig); Vertex AI takes it too
"""

import json
import os
from typing import Any, Dict, List, Optional

import yaml

from eta_ctr.config import EtaConfig

DEFAULT_PIPELINE_NAME = "eta-ctr"
DEFAULT_IMAGE = "eta-ctr:latest"
SPEC_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
# Storage every pod of the run can reach; a path on the compiling machine is not.
REMOTE_SCHEMES = ("gs://", "s3://", "minio://", "hdfs://", "abfs://", "az://")


def spec_format(output_path: str) -> str:
  """'json' or 'yaml', from the output file's extension."""
  extension = os.path.splitext(output_path)[1].lower()
  if extension not in SPEC_FORMATS:
    raise ValueError(f"cannot tell the spec format of {output_path!r}: name it "
                     f"{' or '.join(sorted(SPEC_FORMATS))}")
  return SPEC_FORMATS[extension]


def check_remote(what: str, path: str):
  """Raises unless `path` is in object storage the cluster's pods can reach."""
  if not path or not path.startswith(REMOTE_SCHEMES):
    raise ValueError(f"{what} {path!r} is not a bucket path; pods cannot read this "
                     f"machine's disk. Use one of {', '.join(REMOTE_SCHEMES)}")


def build_pipeline(config: EtaConfig, pipeline_root: str, serving_dir: str,
                   pipeline_name: str = DEFAULT_PIPELINE_NAME,
                   beam_pipeline_args: Optional[List[str]] = None,
                   enable_cache: bool = True):
  """`eta run`'s pipeline for Kubeflow: no metadata connection (KFP brings its own)."""
  from pipeline.pipeline import create_pipeline  # imports TFX; keep the CLI start fast
  return create_pipeline(config, pipeline_name, pipeline_root, serving_dir,
                         metadata_connection_config=None,
                         beam_pipeline_args=beam_pipeline_args,
                         enable_cache=enable_cache)


def compile_pipeline(config: EtaConfig, output_path: str, image: str, pipeline_root: str,
                     serving_dir: Optional[str] = None,
                     pipeline_name: str = DEFAULT_PIPELINE_NAME,
                     beam_pipeline_args: Optional[List[str]] = None,
                     enable_cache: bool = True,
                     allow_local_paths: bool = False) -> Dict[str, Any]:
  """Writes the KFP v2 spec of the pipeline to output_path; returns the PipelineJob dict.

  Args:
    config: the run's configuration; config.source.path is read by the cluster.
    output_path: `.json` or `.yaml`/`.yml` (see the module docstring).
    image: the project image every component runs in.
    pipeline_root: artifacts root, a bucket path; it is also written into the
      spec as defaultPipelineRoot, so a run needs no --pipeline-root.
    serving_dir: Pusher's destination (default PIPELINE_ROOT/serving).
    beam_pipeline_args: Beam options of ExampleGen, StatisticsGen, Transform and
      Evaluator (e.g. --runner=DataflowRunner ...); default: the DirectRunner in the pod.
    allow_local_paths: skip the bucket-path checks (e.g. a volume every pod mounts).
  """
  fmt = spec_format(output_path)
  serving_dir = serving_dir or f"{pipeline_root.rstrip('/')}/serving"
  if not allow_local_paths:
    check_remote("pipeline root", pipeline_root)
    check_remote("serving dir", serving_dir)
    check_remote("click log", config.source.path)
  if not image:
    raise ValueError("an image is required: every component runs in it")

  from tfx import v1 as tfx
  tfx_pipeline = build_pipeline(config, pipeline_root, serving_dir, pipeline_name,
                                beam_pipeline_args, enable_cache)
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=image, display_name=pipeline_name))
  job = runner.run(tfx_pipeline, write_out=False)
  # KFP reads the root from the spec when a run names none; TFX only puts it in
  # runtimeConfig, which the YAML form leaves out.
  job["pipelineSpec"]["defaultPipelineRoot"] = pipeline_root
  _write(job, output_path, fmt)
  return job


def _write(job: Dict[str, Any], output_path: str, fmt: str):
  directory = os.path.dirname(output_path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  with open(output_path, "w") as handle:
    if fmt == "json":
      json.dump(job, handle, indent=2, sort_keys=True)
    else:
      spec = job["pipelineSpec"]
      handle.write(f"# PIPELINE DEFINITION\n# Name: {spec['pipelineInfo']['name']}\n"
                   f"# Compiled by pipeline/kubeflow_v2_runner.py ({spec.get('sdkVersion', 'tfx')})\n")
      yaml.safe_dump(spec, handle, sort_keys=True)
