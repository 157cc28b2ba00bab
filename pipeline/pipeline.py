"""`create_pipeline(config, ...)`: the ETA CTR pipeline, stock TFX components around
the click-log ExampleGen, the curated schema and the validation gate.

  ClickLogExampleGen -> StatisticsGen -> ExampleValidator (against CuratedSchemaGen's
  schema, pipeline/schema.py) -> ValidationGate -> Transform -> Trainer
  -> (latest blessed model) -> Evaluator -> Pusher

The schema is generated from the config, never inferred from a split, and the
gate stops the run before Transform on an anomaly that would break training.

Splits (components/events.py): Transform analyzes `train` alone and transforms
every split; the Trainer fits on `train` and chooses its stopping step on `valid`
(its eval_args; without a valid split it trains the whole budget); the Evaluator
scores `eval` alone, which nothing before it has seen.

Functions are referenced by import path (no module-file wheels), so the same
pipeline compiles for Kubeflow with the project baked into the image.
"""

from typing import List, Optional

from tensorflow_metadata.proto.v0 import schema_pb2
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2  # noqa: F401  (keeps proto registry loaded)

from components import events
from components.example_gen import ClickLogExampleGen
from eta_ctr.config import ETA_CONFIG_KEY, EtaConfig, IngestConfig
from models.preprocessing import transform_custom_config
from pipeline.curated_schema_gen import CuratedSchemaGen
from pipeline.evaluation import make_eval_config
from pipeline.schema import build_schema
from pipeline.validation_gate import VALIDATED_SCHEMA_KEY, ValidationGate

COMPONENT_IDS = ["ClickLogExampleGen", "StatisticsGen", "CuratedSchemaGen", "ExampleValidator",
                 "ValidationGate", "Transform", "Trainer", "latest_blessed_model_resolver",
                 "Evaluator", "Pusher"]
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"


def data_components(config: EtaConfig, schema: Optional[schema_pb2.Schema] = None):
  """ExampleGen, StatisticsGen, CuratedSchemaGen, ExampleValidator, ValidationGate,
  Transform; `schema` replaces the one generated from config.ingest and
  config.features."""
  example_gen = ClickLogExampleGen(config=config.ingest_only())
  statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
  schema_gen = CuratedSchemaGen(schema if schema is not None
                                else build_schema(config.ingest, config.features))
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
  gate = ValidationGate(statistics=statistics_gen.outputs["statistics"],
                        anomalies=example_validator.outputs["anomalies"],
                        schema=schema_gen.outputs["schema"])
  transform = tfx.components.Transform(
      examples=example_gen.outputs["examples"],
      schema=gate.outputs[VALIDATED_SCHEMA_KEY],
      preprocessing_fn=PREPROCESSING_FN,
      splits_config=tfx.proto.SplitsConfig(analyze=[events.SPLIT_TRAIN],
                                           transform=list(config.ingest.split_names)),
      custom_config=transform_custom_config(config.model, config.features),
      disable_statistics=True)
  return [example_gen, statistics_gen, schema_gen, example_validator, gate, transform]


def create_pipeline(config: EtaConfig, pipeline_name: str, pipeline_root: str,
                    serving_dir: str, metadata_connection_config=None,
                    beam_pipeline_args: Optional[List[str]] = None,
                    enable_cache: bool = True,
                    through_transform: bool = False,
                    schema: Optional[schema_pb2.Schema] = None) -> tfx.dsl.Pipeline:
  """The pipeline; `through_transform` stops after Transform (for `eta compare`).

  Blessing follows `config.evaluation`; every component reads its settings from
  `config` (the Trainer gets it whole in custom_config[ETA_CONFIG_KEY]). The
  examples are validated against `schema`, by default
  pipeline.schema.build_schema(config.ingest); pass a reviewed one to pin it.
  """
  custom_config = {ETA_CONFIG_KEY: config.to_json()}
  components = data_components(config, schema)
  example_gen, gate, transform = components[0], components[4], components[5]
  if not through_transform:
    components += _model_components(config, custom_config, example_gen, gate,
                                    transform, serving_dir)
  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name, pipeline_root=pipeline_root, components=components,
      enable_cache=enable_cache, metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=beam_pipeline_args or ["--direct_running_mode=in_memory"])


def trainer_eval_split(ingest: IngestConfig) -> str:
  """The split the Trainer's eval_files hold: `valid`, where it chooses the stopping
  step; `eval` when there is no valid split (run_fn then only trains the budget)."""
  return events.SPLIT_VALID if events.SPLIT_VALID in ingest.split_names else events.SPLIT_EVAL


def _model_components(config, custom_config, example_gen, gate, transform, serving_dir):
  """Trainer -> latest blessed model -> Evaluator -> Pusher."""
  trainer = tfx.components.Trainer(
      run_fn=RUN_FN,
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      schema=gate.outputs[VALIDATED_SCHEMA_KEY],
      train_args=tfx.proto.TrainArgs(splits=[events.SPLIT_TRAIN],
                                     num_steps=config.trainer.train_steps),
      eval_args=tfx.proto.EvalArgs(splits=[trainer_eval_split(config.ingest)],
                                   num_steps=config.trainer.validation_steps or 0),
      custom_config=custom_config)
  model_resolver = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id("latest_blessed_model_resolver")
  evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
      baseline_model=model_resolver.outputs["model"], example_splits=[events.SPLIT_EVAL],
      eval_config=make_eval_config(config.evaluation))
  pusher = tfx.components.Pusher(
      model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)))
  return [trainer, model_resolver, evaluator, pusher]
