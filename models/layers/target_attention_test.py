"""Tests for TargetAttention (multi-head and DIN modes)."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.layers.kernels import fused_ops
from models.layers.target_attention import TargetAttention

B, T, D = 4, 6, 8


def _data(seed=0, dv=D):
  rng = np.random.default_rng(seed)
  query = rng.normal(size=(B, D)).astype(np.float32)
  keys = rng.normal(size=(B, T, D)).astype(np.float32)
  values = rng.normal(size=(B, T, dv)).astype(np.float32)
  mask = rng.random((B, T)) < 0.6
  mask[0] = False  # An empty history.
  mask[1] = True
  mask[2] = False
  mask[2, 3] = True
  return query, keys, values, mask


def np_multi_head(layer, query, keys, values, mask):
  """Reference: per-head masked softmax attention, heads projected back by Wo."""
  wq, wk, wv, wo = (w.numpy().astype(np.float64) for w in (
      layer.query_kernel, layer.key_kernel, layer.value_kernel, layer.output_kernel))
  q = np.einsum("bd,dhk->bhk", query, wq)
  k = np.einsum("btd,dhk->bthk", keys, wk)
  v = np.einsum("btd,dhk->bthk", values, wv)
  out = np.zeros((query.shape[0], wo.shape[-1]))
  for b in range(query.shape[0]):
    idx = np.flatnonzero(mask[b])
    if not len(idx):
      continue
    for h in range(wq.shape[1]):
      logits = k[b, idx, h] @ q[b, h] / np.sqrt(wq.shape[-1])
      weights = np.exp(logits - logits.max())
      weights /= weights.sum()
      out[b] += (weights @ v[b, idx, h]) @ wo[h]
  return out


def np_din(layer, query, keys, values, mask):
  """Reference: sigmoid MLP over [q, k, q-k, q*k], unnormalised masked weighted sum."""
  q = np.broadcast_to(query[:, None, :], keys.shape)
  hidden = np.concatenate([q, keys, q - keys, q * keys], -1).astype(np.float64)
  for i, dense in enumerate(layer._din_layers):
    hidden = hidden @ dense.kernel.numpy() + dense.bias.numpy()
    if i < len(layer._din_layers) - 1:
      hidden = 1 / (1 + np.exp(-hidden))
  scores = hidden[..., 0] * mask
  return np.einsum("bt,btd->bd", scores, values)


@pytest.mark.parametrize("num_heads,key_dim", [(1, None), (2, None), (3, 5)])
def test_multi_head_matches_numpy(num_heads, key_dim):
  query, keys, values, mask = _data(seed=num_heads, dv=5)
  layer = TargetAttention(num_heads=num_heads, key_dim=key_dim)
  out = layer([query, keys, values], behaviour_mask=mask).numpy()
  assert out.shape == (B, 5)
  assert layer.query_kernel.shape == (D, num_heads, key_dim or D // num_heads)
  np.testing.assert_allclose(out, np_multi_head(layer, query, keys, values, mask),
                             rtol=1e-4, atol=1e-5)


def test_din_matches_numpy():
  query, keys, values, mask = _data(seed=7)
  layer = TargetAttention(use_din_activation=True, hidden_units=(16, 8))
  out = layer([query, keys, values], behaviour_mask=mask).numpy()
  assert out.shape == (B, D)
  np.testing.assert_allclose(out, np_din(layer, query, keys, values, mask),
                             rtol=1e-4, atol=1e-5)


MODES = [dict(num_heads=2), dict(use_din_activation=True, hidden_units=(8,))]


@pytest.mark.parametrize("config", MODES)
def test_masked_behaviours_do_not_matter(config):
  query, keys, values, mask = _data(seed=1)
  layer = TargetAttention(**config)
  out = layer([query, keys, values], behaviour_mask=mask).numpy()
  noise = np.random.default_rng(2).normal(scale=100.0, size=keys.shape).astype(np.float32)
  hidden = ~mask[..., None]
  out_changed = layer([query, np.where(hidden, noise, keys), np.where(hidden, -noise, values)],
                      behaviour_mask=mask).numpy()
  np.testing.assert_allclose(out_changed, out, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("config", MODES)
def test_all_masked_rows_give_zeros_and_finite_gradients(config):
  query, keys, values, _ = _data(seed=3)
  mask = np.zeros((B, T), bool)
  mask[1, :2] = True
  layer = TargetAttention(**config)
  tensors = [tf.constant(x) for x in (query, keys, values)]
  with tf.GradientTape() as tape:
    tape.watch(tensors)
    out = layer(tensors, behaviour_mask=mask)
    loss = tf.reduce_sum(out)
  grads = tape.gradient(loss, tensors)
  out = out.numpy()
  np.testing.assert_array_equal(out[[0, 2, 3]], 0.0)
  assert np.abs(out[1]).sum() > 0
  for grad in grads:
    assert np.isfinite(grad.numpy()).all()


@pytest.mark.parametrize("config", MODES)
def test_gradients_reach_query_keys_values(config):
  """Which gradients are mathematically non-zero, and which are exactly zero.

  Row 0 has no valid behaviour, row 1 six, row 2 exactly one, row 3 a few.
  - values and (valid) behaviours always reach the output;
  - masked behaviours never do: their weight is an exact 0, on any CPU;
  - softmax over one behaviour is the constant 1, so in the multi-head mode the
    query and the key of a one-behaviour row do not affect the output: their
    true gradient is 0, and what a kernel returns there is rounding noise at
    most (it differs between CPUs). DIN's sigmoid weights are not normalised,
    so there the query and the key do matter.
  The weights are seeded: with these, every true non-zero below is at least
  5e-3 of the largest gradient and every true zero at most 1e-7 of it (float32
  noise, which differs between CPUs), so the thresholds hold with wide margins.
  """
  keras.utils.set_random_seed(0)
  query, keys, values, mask = _data(seed=4)
  layer = TargetAttention(**config)
  tensors = [tf.constant(x) for x in (query, keys, values)]
  with tf.GradientTape() as tape:
    tape.watch(tensors)
    loss = tf.reduce_sum(layer(tensors, behaviour_mask=mask) ** 2)
  grad_query, grad_keys, grad_values = (g.numpy() for g in tape.gradient(loss, tensors))
  valid = mask.sum(-1)
  assert list(valid[:3]) == [0, T, 1] and valid[3] >= 2
  softmax = not config.get("use_din_activation", False)
  query_moves = valid >= (2 if softmax else 1)  # rows whose output depends on the query
  norms = {"query": np.abs(grad_query).sum(-1), "keys": np.abs(grad_keys).sum(-1),
           "values": np.abs(grad_values).sum(-1)}
  scale = max(norm.max() for norm in norms.values())
  assert (norms["query"][query_moves] > 1e-4 * scale).all()
  assert (norms["values"][mask] > 1e-4 * scale).all()
  keys_move = mask & query_moves[:, None]
  assert (norms["keys"][keys_move] > 1e-4 * scale).all()
  # True zeros: below float32 rounding of the other rows' gradients.
  np.testing.assert_allclose(norms["query"][~query_moves], 0.0, atol=1e-5 * scale)
  np.testing.assert_allclose(norms["keys"][mask & ~keys_move], 0.0, atol=1e-5 * scale)
  # Masked behaviours are multiplied by an exact 0: exactly no gradient.
  np.testing.assert_array_equal(norms["keys"][~mask], 0.0)
  np.testing.assert_array_equal(norms["values"][~mask], 0.0)


@pytest.mark.parametrize("config", MODES)
def test_multiple_candidates_match_single(config):
  rng = np.random.default_rng(5)
  queries = rng.normal(size=(B, 3, D)).astype(np.float32)
  _, keys, values, mask = _data(seed=5)
  layer = TargetAttention(**config)
  multi = layer([queries, keys, values], behaviour_mask=mask).numpy()
  assert multi.shape == (B, 3, D)
  for c in range(3):
    single = layer([queries[:, c], keys, values], behaviour_mask=mask).numpy()
    np.testing.assert_allclose(multi[:, c], single, rtol=1e-5, atol=1e-6)


def test_no_mask_means_all_valid_and_values_default_to_keys():
  query, keys, _, _ = _data(seed=6)
  layer = TargetAttention(num_heads=2)
  out = layer([query, keys]).numpy()
  np.testing.assert_allclose(
      out, layer([query, keys, keys], behaviour_mask=np.ones((B, T), bool)).numpy(), rtol=1e-6)


def test_dropout_only_in_training():
  query, keys, values, mask = _data(seed=8)
  layer = TargetAttention(num_heads=2, dropout=0.5)
  inference = [layer([query, keys, values], behaviour_mask=mask).numpy() for _ in range(2)]
  np.testing.assert_array_equal(inference[0], inference[1])
  tf.random.set_seed(0)
  train = layer([query, keys, values], behaviour_mask=mask, training=True).numpy()
  assert not np.allclose(train, inference[0])


@pytest.mark.parametrize("config", [
    dict(num_heads=3, key_dim=4, dropout=0.1, name="ta"),
    dict(use_din_activation=True, hidden_units=(12, 6), name="din")])
def test_get_config_round_trip(config):
  query, keys, values, mask = _data(seed=9)
  layer = TargetAttention(**config)
  clone = layer.__class__.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  layer([query, keys, values], behaviour_mask=mask)
  clone([query, keys, values], behaviour_mask=mask)
  clone.set_weights(layer.get_weights())
  np.testing.assert_array_equal(
      clone([query, keys, values], behaviour_mask=mask).numpy(),
      layer([query, keys, values], behaviour_mask=mask).numpy())


@pytest.mark.parametrize("config", MODES)
def test_saved_model_round_trip(tmp_path, config):
  query_in = keras.Input((D,), name="query")
  keys_in = keras.Input((T, D), name="keys")
  mask_in = keras.Input((T,), dtype=tf.bool, name="mask")
  outputs = TargetAttention(**config)([query_in, keys_in], behaviour_mask=mask_in)
  model = keras.Model([query_in, keys_in, mask_in], outputs)
  query, keys, _, mask = _data(seed=10)
  want = model([query, keys, mask]).numpy()
  path = str(tmp_path / "model")
  model.save(path, save_format="tf")

  loaded = keras.models.load_model(path, custom_objects={"TargetAttention": TargetAttention})
  np.testing.assert_allclose(loaded([query, keys, mask]).numpy(), want, rtol=1e-6, atol=1e-7)
  # The serving signature (no Keras on the loading side) agrees too.
  serving = tf.saved_model.load(path).signatures["serving_default"]
  served = serving(query=tf.constant(query), keys=tf.constant(keys), mask=tf.constant(mask))
  np.testing.assert_allclose(next(iter(served.values())).numpy(), want, rtol=1e-6, atol=1e-7)


# attend_gathered (the inference path) against the layer's own call on the
# gathered behaviours (the differentiable path training uses). Tolerance: the
# fused op and the DIN split sum in another order than the stock matmuls, so
# float32 rounding differs. Relative 1e-5, plus an absolute 1e-6 of the largest
# output magnitude for entries that are sums cancelling towards 0 (DIN's
# unnormalised sums reach |10|); unit-scale inputs, D <= 64, k <= 48.
GATHERED_RTOL, GATHERED_ATOL = 1e-5, 1e-6


def _assert_close(got, want):
  np.testing.assert_allclose(got, want, rtol=GATHERED_RTOL,
                             atol=GATHERED_ATOL * max(1.0, float(np.abs(want).max())))


def _gathered_case(seed, batch, candidates, length, k, dim):
  """Random query [B, C, D], history [B, L, D] and the top-k outputs' shape of
  slots: valid slots first (distinct in-range indices), then empty slots holding
  index 0 as HammingTopK leaves them. Row 0 of batch 0 has fewer valid behaviours
  than k, one row none at all, and one history is empty when batch > 1."""
  rng = np.random.default_rng(seed)
  query = rng.normal(size=(batch, candidates, dim)).astype(np.float32)
  history = rng.normal(size=(batch, length, dim)).astype(np.float32)
  indices = np.zeros((batch, candidates, k), np.int32)
  valid = np.zeros((batch, candidates, k), bool)
  for b in range(batch):
    available = 0 if (batch > 1 and b == batch - 1) else rng.integers(1, length + 1)
    for c in range(candidates):
      count = min(k, available, int(rng.integers(0, k + 1)) if c % 3 == 0 else k)
      if c == 1:
        count = 0
      indices[b, c, :count] = rng.choice(length, size=count, replace=False)
      valid[b, c, :count] = True
  return query, history, indices, valid


def _reference(layer, query, history, indices, valid):
  gathered = tf.gather(history, indices, batch_dims=1)  # [B, C, k, D]
  batch, candidates, k, dim = gathered.shape
  out = layer([tf.reshape(query, [-1, dim]), tf.reshape(gathered, [-1, k, dim])],
              behaviour_mask=tf.reshape(valid, [-1, k]), training=False)
  return tf.reshape(out, [batch, candidates, -1]).numpy()


GATHERED_MODES = [
    (dict(num_heads=2), True), (dict(num_heads=2), False),
    (dict(num_heads=3, key_dim=5), True), (dict(num_heads=1), True),
    (dict(use_din_activation=True, hidden_units=(12, 6)), False),
    (dict(use_din_activation=True, hidden_units=(80, 40)), False),
]


@pytest.mark.parametrize("config,fused", GATHERED_MODES)
@pytest.mark.parametrize("batch,candidates,length,k,dim", [
    (1, 37, 50, 8, 16), (2, 9, 7, 12, 8), (3, 5, 64, 48, 64), (1, 300, 1024, 48, 64)])
def test_attend_gathered_equals_call_on_gathered(config, fused, batch, candidates, length, k,
                                                 dim):
  query, history, indices, valid = _gathered_case(
      batch * 1000 + length + k, batch, candidates, length, k, dim)
  layer = TargetAttention(**config)
  want = _reference(layer, query, history, indices, valid)
  op = fused_ops.load() if fused else None
  if fused:
    assert op is not None, "the fused kernels must build here"
  got = layer.attend_gathered(tf.constant(query), tf.constant(history), tf.constant(indices),
                              tf.constant(valid), fused_op=op).numpy()
  assert got.shape == want.shape == (batch, candidates, dim)
  _assert_close(got, want)
  # Rows with no valid slot are exact zeros in both.
  empty = ~valid.any(-1)
  assert empty.any()
  np.testing.assert_array_equal(got[empty], 0.0)
  np.testing.assert_array_equal(want[empty], 0.0)


@pytest.mark.parametrize("config,fused", GATHERED_MODES)
def test_attend_gathered_ignores_empty_slots_contents(config, fused):
  query, history, indices, valid = _gathered_case(11, 2, 6, 20, 10, 8)
  layer = TargetAttention(**config)
  op = fused_ops.load() if fused else None
  run = lambda i: layer.attend_gathered(tf.constant(query), tf.constant(history),
                                        tf.constant(i), tf.constant(valid), fused_op=op).numpy()
  moved = np.where(valid, indices, np.random.default_rng(3).integers(0, 20, indices.shape))
  np.testing.assert_array_equal(run(moved.astype(np.int32)), run(indices))


def test_fused_gather_attention_rejects_an_index_out_of_range():
  query, history, indices, valid = _gathered_case(12, 1, 4, 10, 3, 8)
  layer = TargetAttention(num_heads=2)
  layer.attend_gathered(tf.constant(query), tf.constant(history), tf.constant(indices),
                        tf.constant(valid), fused_op=fused_ops.load())
  indices[0, 0, 0], valid[0, 0, 0] = 10, True
  with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
    layer.attend_gathered(tf.constant(query), tf.constant(history), tf.constant(indices),
                          tf.constant(valid), fused_op=fused_ops.load())


@pytest.mark.parametrize("config", [dict(num_heads=2), dict(use_din_activation=True)])
def test_attend_gathered_builds_a_fresh_layer_as_a_call_would(config):
  query, history, indices, valid = _gathered_case(13, 1, 4, 9, 3, 8)
  layer = TargetAttention(**config)
  got = layer.attend_gathered(query, history, tf.constant(indices), tf.constant(valid)).numpy()
  called = TargetAttention(**config)
  called([query[:, 0], history])
  assert layer.built
  assert ([w.shape for w in layer.weights] == [w.shape for w in called.weights])
  _assert_close(got, _reference(layer, query, history, indices, valid))
