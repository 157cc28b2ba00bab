"""Steady-state training throughput on a pipeline's Transform output (docs/capacity_plan.md).

  python docs/measure_training.py PIPELINE_ROOT --long-seq-len L
      [--model eta] [--batch-size 256] [--steps 100]

PIPELINE_ROOT is an `eta run --pipeline-root` on a non-MovieLens log, run with the
same --long-seq-len (the Transform output is padded to it).

Builds the model of the run's configuration as run_fn does, traces it with a
short fit, then times a second fit: examples per wall second and per CPU second
of the process (the second is what to scale by on a shared machine).
"""

import argparse
import glob
import json
import os
import time

from eta_ctr import runtime
from eta_ctr.config import EtaConfig, ModelConfig, TrainerConfig


def _latest(pattern):
  return max(glob.glob(pattern), key=lambda p: int(os.path.basename(p)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("pipeline_root")
  parser.add_argument("--long-seq-len", type=int, required=True)
  parser.add_argument("--model", default="eta")
  parser.add_argument("--batch-size", type=int, default=TrainerConfig.batch_size)
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--warmup-steps", type=int, default=10)
  args = parser.parse_args()
  runtime.prepare()  # before TensorFlow is imported
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  from models import autograph_speedup, data  # pylint: disable=g-import-not-at-top
  from models.architectures.registry import build_model  # pylint: disable=g-import-not-at-top
  from models.trainer import vocabulary_sizes  # pylint: disable=g-import-not-at-top
  autograph_speedup.install()  # as the Trainer has it
  root = args.pipeline_root
  length = args.long_seq_len
  # As eta_ctr.flags.config_from_args does for a non-MovieLens log.
  config = EtaConfig(model=ModelConfig(name=args.model).replace_clamped(long_seq_len=length),
                     trainer=TrainerConfig(batch_size=args.batch_size))
  transform_dir = _latest(os.path.join(root, "Transform", "transform_graph", "*"))
  examples_dir = _latest(os.path.join(root, "Transform", "transformed_examples", "*"))
  output = tft.TFTransformOutput(transform_dir)
  batch = config.trainer.batch_size
  dataset = data.transformed_dataset(os.path.join(examples_dir, "Split-train", "*"), output,
                                     batch, shuffle=True, seed=config.model.seed)
  model = build_model(config.model, *vocabulary_sizes(output, config))
  model.compile(optimizer=keras.optimizers.Adam(config.trainer.learning_rate))
  model.fit(dataset, epochs=1, steps_per_epoch=args.warmup_steps, verbose=0)  # trace
  wall, cpu = time.perf_counter(), time.process_time()
  model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
  wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
  examples = args.steps * batch
  print(json.dumps({
      "model": config.model.name, "long_seq_len": config.model.long_seq_len,
      "batch_size": batch, "steps": args.steps,
      "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
      "examples_per_wall_s": round(examples / wall, 1),
      "examples_per_cpu_s": round(examples / cpu, 1),
      "ms_per_step": round(1000 * wall / args.steps, 1)}))


if __name__ == "__main__":
  main()
