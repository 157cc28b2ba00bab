"""Which split each component reads: Transform analyzes train, the Trainer stops on valid,
the Evaluator scores eval alone (no pipeline is run)."""

import json

import pytest
from tfx.proto import example_gen_pb2, trainer_pb2, transform_pb2
from tfx.utils import proto_utils

from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig
from pipeline.pipeline import create_pipeline


def _nodes(valid_fraction):
  config = EtaConfig(source=SourceConfig(format="csv", path="/data/log.csv"),
                     ingest=IngestConfig(valid_fraction=valid_fraction))
  pipeline = create_pipeline(config, "p", "/tmp/root", "/tmp/serving")
  return {node.id: node for node in pipeline.components}


def _proto(value, proto_class):
  """An exec property as its proto (some are kept as JSON text)."""
  return proto_utils.json_to_proto(value, proto_class()) if isinstance(value, str) else value


@pytest.mark.parametrize("valid_fraction, splits, trainer_eval", [
    (0.1, ["train", "valid", "eval"], "valid"),
    (0.0, ["train", "eval"], "eval"),  # no valid split: run_fn trains the budget, reads none
])
def test_each_component_reads_its_split(valid_fraction, splits, trainer_eval):
  nodes = _nodes(valid_fraction)
  example_gen = _proto(nodes["ClickLogExampleGen"].exec_properties["output_config"],
                       example_gen_pb2.Output)
  assert [split.name for split in example_gen.split_config.splits] == splits
  transform = _proto(nodes["Transform"].exec_properties["splits_config"],
                     transform_pb2.SplitsConfig)
  assert (list(transform.analyze), list(transform.transform)) == (["train"], splits)
  trainer = nodes["Trainer"].exec_properties
  assert list(_proto(trainer["train_args"], trainer_pb2.TrainArgs).splits) == ["train"]
  assert list(_proto(trainer["eval_args"], trainer_pb2.EvalArgs).splits) == [trainer_eval]
  assert json.loads(nodes["Evaluator"].exec_properties["example_splits"]) == ["eval"]
