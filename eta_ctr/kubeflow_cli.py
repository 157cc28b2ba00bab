"""`eta kubeflow compile`: the pipeline as a KFP v2 spec.

  eta kubeflow compile --output pipeline.yaml --image REGISTRY/eta-ctr:TAG
      --pipeline-root gs://BUCKET/root --data-path 'gs://BUCKET/logs/*.csv'
      [--serving-dir gs://BUCKET/serving] [--format csv] [--pipeline-name eta-ctr]
      [--beam-arg=--runner=DataflowRunner ...] [model, trainer and ingest flags of `eta run`]

Other unrecognised --flags are Beam options too, as for `eta run`.
"""

import argparse
import os
from typing import List

from eta_ctr import flags
from eta_ctr.config import SourceConfig
from pipeline import kubeflow_v2_runner as runner  # TFX is imported only when compiling

IMAGE_ENV = "ETA_IMAGE"
# Placeholders so that `eta kubeflow compile --output pipeline.json` works out of the
# box; the printed note says to replace them (the root can also be set at submit time).
PLACEHOLDER_ROOT = "gs://YOUR_BUCKET/eta-ctr/root"
PLACEHOLDER_DATA = "gs://YOUR_BUCKET/eta-ctr/data/ml-100k"
PLACEHOLDER_FORMAT = "movielens"


def add_commands(subparsers) -> argparse.ArgumentParser:
  """Adds `kubeflow compile` to the `eta` command's subparsers; returns the `kubeflow` parser."""
  kubeflow = subparsers.add_parser("kubeflow", help="Kubeflow Pipelines: compile the "
                                   "pipeline to a KFP v2 spec (see kubeflow/README.md)")
  commands = kubeflow.add_subparsers(dest="kubeflow_command", required=True)
  compile_ = commands.add_parser(
      "compile", help="write the pipeline as a KFP v2 PipelineSpec (.yaml) or "
      "PipelineJob (.json)", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  group = compile_.add_argument_group("kubeflow")
  group.add_argument("--output", required=True,
                     help="pipeline.yaml (kfp client, Vertex AI) or pipeline.json (Vertex AI)")
  group.add_argument("--image", default=os.environ.get(IMAGE_ENV, runner.DEFAULT_IMAGE),
                     help=f"image of every component (default ${IMAGE_ENV}, "
                          f"else {runner.DEFAULT_IMAGE})")
  group.add_argument("--pipeline-root", default=os.environ.get("ETA_PIPELINE_ROOT",
                                                               PLACEHOLDER_ROOT),
                     help="artifact root on a bucket (gs://..., s3://..., minio://...); "
                          f"default $ETA_PIPELINE_ROOT, else the placeholder {PLACEHOLDER_ROOT}")
  group.add_argument("--serving-dir", help="Pusher destination (default PIPELINE_ROOT/serving)")
  group.add_argument("--pipeline-name", default=runner.DEFAULT_PIPELINE_NAME)
  group.add_argument("--beam-arg", action="append", default=[], dest="beam_args",
                     metavar="--OPTION=VALUE",
                     help="a Beam pipeline option for the Beam components; repeatable. "
                          "Write it with '=': --beam-arg=--runner=DataflowRunner")
  group.add_argument("--no-cache", action="store_true", help="disable KFP step caching")
  group.add_argument("--allow-local-paths", action="store_true",
                     help="accept non-bucket paths (e.g. a volume mounted in every pod)")
  data = compile_.add_argument_group("data (read by the cluster, not here)")
  data.add_argument("--data-path", "--data", dest="data_path",
                    default=os.environ.get("ETA_DATA", PLACEHOLDER_DATA),
                    help="the click log on a bucket: a file or a glob "
                         "(gs://b/logs/*.csv); for --format movielens a MovieLens directory "
                         "(any layout: ml-100k, ml-1m, ml-10m, ml-latest...); "
                         f"default $ETA_DATA, else the placeholder {PLACEHOLDER_DATA}")
  flags.add_format_arg(data)
  flags.add_label_rule_arg(data)
  flags.add_ingest_args(compile_)
  flags.add_model_args(compile_)
  compile_.set_defaults(handler=cmd_compile)
  return kubeflow


def source_from_args(args) -> SourceConfig:
  """--data-path/--format -> SourceConfig, without touching the path (it is remote)."""
  fmt = args.format
  if fmt is None and args.data_path == PLACEHOLDER_DATA:
    fmt = PLACEHOLDER_FORMAT
  return flags.source_for_path(args.data_path, fmt, args.min_positive_rating)


def cmd_compile(args, extra_args: List[str]) -> int:
  """Handler of `eta kubeflow compile`: extra --flags are Beam options."""
  config = flags.config_from_args(args, source_from_args(args))
  beam_args = list(args.beam_args) + list(extra_args or [])
  try:
    job = runner.compile_pipeline(
        config, args.output, image=args.image, pipeline_root=args.pipeline_root,
        serving_dir=args.serving_dir, pipeline_name=args.pipeline_name,
        beam_pipeline_args=beam_args or None, enable_cache=not args.no_cache,
        allow_local_paths=args.allow_local_paths)
  except ValueError as error:
    raise SystemExit(f"eta kubeflow compile: {error}") from error
  tasks = sorted(job["pipelineSpec"]["root"]["dag"]["tasks"])
  print(f"wrote {args.output}: {len(tasks)} tasks, image {args.image}, "
        f"root {args.pipeline_root}, model {config.model.name} "
        f"(L={config.model.long_seq_len}, k={config.model.top_k})")
  if beam_args:
    print(f"beam args: {' '.join(beam_args)}")
  placeholders = [flag for flag, value, placeholder in (
      ("--pipeline-root", args.pipeline_root, PLACEHOLDER_ROOT),
      ("--data", args.data_path, PLACEHOLDER_DATA)) if value == placeholder]
  if placeholders:
    verb = "is a placeholder" if len(placeholders) == 1 else "are placeholders"
    print(f"note: {' and '.join(placeholders)} {verb} (YOUR_BUCKET); pass your "
          f"bucket paths, or set $ETA_PIPELINE_ROOT / $ETA_DATA")
  print("run it: see kubeflow/README.md (kfp.Client().create_run_from_pipeline_package "
        "or aiplatform.PipelineJob)")
  return 0
