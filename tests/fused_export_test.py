"""An ETA export with the fused ops == the portable (stock-op) export (retrieval bit
for bit, probabilities to float rounding: the fused attention sums in another
order), and only the one that asks for them carries them; `score` retrieves once."""

import dataclasses

import numpy as np
import pytest

from benchmarks import serving_latency
from benchmarks.synthetic_requests import build_transform_graph, raw_request
from models.layers.kernels import fused_ops
from models.signatures import PROBABILITIES, RETRIEVED_DISTANCES, RETRIEVED_POSITIONS
from serving.requests import score_inputs
from serving.servable import Servable, read_saved_model, uses_fused_kernel

pytestmark = pytest.mark.e2e


def test_fused_and_stock_exports_score_identically(tmp_path):
  assert fused_ops.available(), "the fused kernel must build here"
  config = serving_latency.model_config("eta", 64, 8)
  vocab = 200
  tft_dir = build_transform_graph(config, vocab, str(tmp_path / "tft"))
  model = serving_latency.build_model(config, vocab)
  exports = {}
  for kernel in ("auto", "fused"):
    path = str(tmp_path / kernel / "1")
    serving_latency._export(model, dataclasses.replace(config, retrieval_kernel=kernel),
                            tft_dir, path)
    exports[kernel] = path
  assert not uses_fused_kernel(exports["auto"])  # stock TF Serving can load it
  assert uses_fused_kernel(exports["fused"])
  inputs = score_inputs(raw_request(64, 30, vocab, seed=1))
  outputs = {kernel: Servable.load(path, 1).run("score", inputs)
             for kernel, path in exports.items()}
  for name in (RETRIEVED_POSITIONS, RETRIEVED_DISTANCES):
    assert (outputs["auto"][name] == outputs["fused"][name]).all(), name
  np.testing.assert_allclose(outputs["fused"][PROBABILITIES], outputs["auto"][PROBABILITIES],
                             rtol=1e-5, atol=1e-6)
  assert (outputs["auto"][RETRIEVED_POSITIONS] >= 0).all()  # 64 behaviours, k = 8
  # The fused export's `score`: one retrieval (logits and explanations share it) and
  # the fused attention.
  ops = _score_ops(exports["fused"])
  assert ops and all(found == ["EtaGatherAttention", "EtaHammingTopK"] for found in ops), ops


def _score_ops(path):
  """Per traced `score` function of the SavedModel, its fused ops (sorted)."""
  found = []
  for meta_graph in read_saved_model(path).meta_graphs:
    for function in meta_graph.graph_def.library.function:
      if function.signature.name.startswith("__inference_score_"):
        found.append(sorted(node.op for node in function.node_def
                            if node.op in fused_ops.OP_NAMES))
  return found
