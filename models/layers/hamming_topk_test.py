"""Tests for hamming_distance and HammingTopK, and for gradients through retrieval."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.layers import hamming_topk
from models.layers.hamming_topk import HammingTopK
from models.layers.hamming_topk import hamming_distance
from models.layers.kernels import fused_ops
from models.layers.simhash import SimHash
from models.layers.target_attention import TargetAttention


def np_hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Reference distances [...] of int64 codes [..., W]: XOR, then count bits per byte."""
  x = np.ascontiguousarray(np.bitwise_xor(a, b))
  return np.unpackbits(x.view(np.uint8), axis=-1).sum(axis=-1).astype(np.int32)


def np_top_k(candidate, behaviours, mask, k):
  """Brute force: stable sort of the valid positions by (distance, index)."""
  batch, length = mask.shape
  indices = np.zeros((batch, k), np.int32)
  distances = np.zeros((batch, k), np.int32)
  valid = np.zeros((batch, k), bool)
  for b in range(batch):
    d = np_hamming(candidate[b][None, :], behaviours[b])
    order = sorted((d[t], t) for t in range(length) if mask[b, t])[:k]
    for j, (dist, t) in enumerate(order):
      indices[b, j], distances[b, j], valid[b, j] = t, dist, True
  return indices, distances, valid


def np_top_k_many(candidates, behaviours, mask, k):
  """Brute force for [B, C, W] candidates: a stable argsort of the distances, padding
  pushed past every real distance, so ties keep index order. Three [B, C, k]."""
  distances = np_hamming(candidates[:, :, None, :], behaviours[:, None, :, :])  # [B, C, L]
  length = distances.shape[-1]
  distances = np.where(mask[:, None, :], distances, np.iinfo(np.int32).max)
  order = np.argsort(distances, axis=-1, kind="stable")[..., :k]
  nearest = np.take_along_axis(distances, order, axis=-1)
  valid = nearest != np.iinfo(np.int32).max
  pad = [(0, 0), (0, 0), (0, max(0, k - length))]
  return (np.pad(np.where(valid, order, 0), pad).astype(np.int32),
          np.pad(np.where(valid, nearest, 0), pad).astype(np.int32),
          np.pad(valid, pad, constant_values=False))


def random_codes(rng, shape, num_bits):
  """int64 codes [*shape, W] with num_bits random bits, packed like SimHash."""
  words = -(-num_bits // 64)
  bits = np.zeros(shape + (words * 64,), np.uint8)
  bits[..., :num_bits] = rng.random(shape + (num_bits,)) < 0.5
  packed = np.packbits(bits, axis=-1, bitorder="little")
  return np.ascontiguousarray(packed).view("<i8")


@pytest.mark.parametrize("num_bits", [16, 64, 100, 128, 256])
def test_hamming_distance_matches_numpy(num_bits):
  rng = np.random.default_rng(num_bits)
  a = random_codes(rng, (4, 9), num_bits)
  b = random_codes(rng, (4, 9), num_bits)
  got = hamming_distance(a, b).numpy()
  assert got.dtype == np.int32 and got.shape == (4, 9)
  np.testing.assert_array_equal(got, np_hamming(a, b))
  np.testing.assert_array_equal(hamming_distance(a, a).numpy(), np.zeros((4, 9)))


def test_hamming_distance_full_int64_words_and_broadcast():
  rng = np.random.default_rng(0)
  # Full-range words, negative ones included (bit 63 set).
  a = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, (3, 1, 4), dtype=np.int64)
  b = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, (3, 6, 4), dtype=np.int64)
  np.testing.assert_array_equal(hamming_distance(a, b).numpy(), np_hamming(a, b))
  assert hamming_distance(np.array([[-1]], np.int64), np.array([[0]], np.int64)).numpy() == 64


def _masks(rng, batch, length):
  """Masks with every awkward case: dense, sparse, single, empty, full."""
  mask = rng.random((batch, length)) < 0.6
  mask[0] = False           # All padding.
  mask[1] = False
  mask[1, length - 1] = True  # One valid behaviour, at the oldest slot.
  mask[2] = rng.random(length) < 0.15
  mask[3] = True
  return mask


@pytest.fixture(params=["stock", "fused"])
def kernel(request):
  """Both kernels must give exactly the same answers (fused must build here: a
  failure to build is a test failure, not a skip)."""
  return request.param


@pytest.mark.parametrize("num_bits,k", [(8, 1), (8, 5), (16, 12), (64, 3), (100, 7), (256, 30)])
def test_top_k_matches_brute_force(num_bits, k, kernel):
  rng = np.random.default_rng(num_bits * 31 + k)
  batch, length = 8, 12
  candidate = random_codes(rng, (batch,), num_bits)
  behaviours = random_codes(rng, (batch, length), num_bits)
  # Deliberate ties: duplicated behaviours and copies of the candidate.
  behaviours[:, 5] = behaviours[:, 2]
  behaviours[:, 9] = behaviours[:, 2]
  behaviours[4:, 7] = candidate[4:]
  behaviours[4:, 3] = candidate[4:]
  mask = _masks(rng, batch, length)

  indices, distances, valid = HammingTopK(k, kernel=kernel)([candidate, behaviours], behaviour_mask=mask)
  want_indices, want_distances, want_valid = np_top_k(candidate, behaviours, mask, k)
  assert indices.dtype == tf.int32 and distances.dtype == tf.int32 and valid.dtype == tf.bool
  assert indices.shape == (batch, k)
  np.testing.assert_array_equal(valid.numpy(), want_valid)
  np.testing.assert_array_equal(indices.numpy(), want_indices)
  np.testing.assert_array_equal(distances.numpy(), want_distances)


def test_ties_break_toward_more_recent(kernel):
  candidate = np.array([[0]], np.int64)
  # Distances 1, 0, 1, 0, 1: the zeros win (lower index first), then the ones.
  behaviours = np.array([[[1], [0], [2], [0], [4]]], np.int64)
  indices, distances, valid = HammingTopK(4, kernel=kernel)([candidate, behaviours])
  np.testing.assert_array_equal(indices.numpy(), [[1, 3, 0, 2]])
  np.testing.assert_array_equal(distances.numpy(), [[0, 0, 1, 1]])
  assert valid.numpy().all()


def test_padding_never_selected_even_when_nearest(kernel):
  candidate = np.array([[0]], np.int64)
  behaviours = np.array([[[0], [-1], [0], [3]]], np.int64)  # Distances 0, 64, 0, 2.
  mask = np.array([[False, True, False, True]])
  indices, distances, valid = HammingTopK(3, kernel=kernel)([candidate, behaviours], behaviour_mask=mask)
  np.testing.assert_array_equal(indices.numpy(), [[3, 1, 0]])
  np.testing.assert_array_equal(distances.numpy(), [[2, 64, 0]])
  np.testing.assert_array_equal(valid.numpy(), [[True, True, False]])


def test_k_larger_than_sequence_and_empty_sequence(kernel):
  rng = np.random.default_rng(1)
  candidate = random_codes(rng, (2,), 64)
  behaviours = random_codes(rng, (2, 3), 64)
  indices, _, valid = HammingTopK(5, kernel=kernel)([candidate, behaviours])
  assert indices.shape == (2, 5)
  np.testing.assert_array_equal(valid.numpy(), [[True] * 3 + [False] * 2] * 2)
  np.testing.assert_array_equal(indices.numpy()[:, 3:], 0)

  indices, distances, valid = HammingTopK(2, kernel=kernel)([candidate, np.zeros((2, 0, 1), np.int64)])
  assert indices.shape == (2, 2) and not valid.numpy().any()


def test_multiple_candidates_match_single(kernel):
  rng = np.random.default_rng(2)
  candidates = random_codes(rng, (5, 4), 100)  # [B, C, W]
  behaviours = random_codes(rng, (5, 10), 100)
  mask = _masks(rng, 5, 10)
  layer = HammingTopK(4, kernel=kernel)
  multi = layer([candidates, behaviours], behaviour_mask=mask)
  assert multi[0].shape == (5, 4, 4)
  for c in range(4):
    single = layer([candidates[:, c], behaviours], behaviour_mask=mask)
    for got, want in zip(multi, single):
      np.testing.assert_array_equal(got.numpy()[:, c], want.numpy())


def test_dynamic_length_in_graph_mode(kernel):
  layer = HammingTopK(3, kernel=kernel)

  @tf.function(input_signature=[
      tf.TensorSpec([None, 2], tf.int64), tf.TensorSpec([None, None, 2], tf.int64),
      tf.TensorSpec([None, None], tf.bool)])
  def retrieve(candidate, behaviours, mask):
    outputs = layer([candidate, behaviours], behaviour_mask=mask)
    assert all(t.shape.as_list() == [None, 3] for t in outputs)
    return outputs

  rng = np.random.default_rng(3)
  for length in (2, 9):
    candidate = random_codes(rng, (4,), 128)
    behaviours = random_codes(rng, (4, length), 128)
    mask = _masks(rng, 4, length)
    got = retrieve(candidate, behaviours, mask)
    for g, w in zip(got, np_top_k(candidate, behaviours, mask, 3)):
      np.testing.assert_array_equal(g.numpy(), w)


def test_get_config_round_trip():
  layer = HammingTopK(k=16, name="topk")
  clone = layer.__class__.from_config(layer.get_config())
  assert (clone.k, clone.name) == (16, "topk")
  with pytest.raises(ValueError):
    HammingTopK(0)


def test_saved_model_round_trip(tmp_path):
  candidate_in = keras.Input((2,), dtype=tf.int64)
  behaviours_in = keras.Input((10, 2), dtype=tf.int64)
  mask_in = keras.Input((10,), dtype=tf.bool)
  outputs = HammingTopK(4)([candidate_in, behaviours_in], behaviour_mask=mask_in)
  model = keras.Model([candidate_in, behaviours_in, mask_in], list(outputs))
  path = str(tmp_path / "model")
  model.save(path, save_format="tf")
  loaded = keras.models.load_model(path, custom_objects={"HammingTopK": HammingTopK})

  rng = np.random.default_rng(4)
  inputs = [random_codes(rng, (5,), 100), random_codes(rng, (5, 10), 100), _masks(rng, 5, 10)]
  want = np_top_k(*inputs, 4)
  for model_ in (model, loaded):
    for got, w in zip(model_(inputs), want):
      np.testing.assert_array_equal(got.numpy(), w)


def test_gradients_reach_only_retrieved_embeddings():
  """embedding -> SimHash -> HammingTopK -> gather -> TargetAttention -> sum."""
  rng = np.random.default_rng(5)
  num_items, dim, length, k = 40, 8, 10, 3
  table = tf.Variable(rng.normal(size=(num_items, dim)).astype(np.float32))
  candidate_ids = np.array([30, 31])
  history_ids = np.arange(2 * length).reshape(2, length)  # Disjoint from the candidates.
  mask = np.ones((2, length), bool)
  mask[:, -2:] = False
  hasher, retriever = SimHash(num_bits=32, seed=1), HammingTopK(k)
  attention = TargetAttention(num_heads=2)

  with tf.GradientTape(persistent=True) as tape:
    candidate = tf.gather(table, candidate_ids)  # [B, D]
    history = tf.gather(table, history_ids)  # [B, L, D]
    indices, distances, valid = retriever(
        [hasher(candidate), hasher(history)], behaviour_mask=mask)
    retrieved = tf.gather(history, indices, batch_dims=1)  # [B, k, D]
    loss = tf.reduce_sum(attention([candidate, retrieved], behaviour_mask=valid))
    selection = tf.reduce_sum(tf.cast(distances, tf.float32))

  # Nothing differentiable comes out of the hashing and the selection.
  assert tape.gradient(selection, table) is None
  grad = np.linalg.norm(tf.convert_to_tensor(tape.gradient(loss, table)).numpy(), axis=-1)
  assert valid.numpy().all()
  retrieved_ids = set(np.take_along_axis(history_ids, indices.numpy(), axis=1).ravel())
  assert len(retrieved_ids) == 2 * k
  for item in range(num_items):
    if item in retrieved_ids or item in candidate_ids:
      assert grad[item] > 0, item
    else:  # Behaviours not retrieved (and padding) get no gradient.
      assert grad[item] == 0, item


@pytest.mark.parametrize("num_bits,length,k", [(8, 300, 48), (64, 1024, 48), (192, 257, 16)])
def test_fused_equals_stock_on_large_inputs_with_many_ties(num_bits, length, k):
  rng = np.random.default_rng(num_bits + length)
  batch, candidates = 5, 40
  behaviours = random_codes(rng, (batch, length), num_bits)
  candidate = random_codes(rng, (batch, candidates), num_bits)
  mask = _masks(rng, batch, length)
  stock = HammingTopK(k, kernel="stock")([candidate, behaviours], behaviour_mask=mask)
  fused = HammingTopK(k, kernel="fused")([candidate, behaviours], behaviour_mask=mask)
  for a, b in zip(stock, fused):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def _tie_heavy_inputs(rng, batch, candidates, length, num_bits):
  """Codes with many equal distances: repeated behaviours, candidates copied into
  the history, and masks of every kind (full, sparse, one valid, none, a prefix)."""
  behaviours = random_codes(rng, (batch, length), num_bits)
  behaviours[:, 1::3] = behaviours[:, 0:1]  # a third of the history is one behaviour
  behaviours[:, 7::11] = behaviours[:, 5::11][:, :behaviours[:, 7::11].shape[1]]
  codes = random_codes(rng, (batch, candidates), num_bits)
  codes[:, ::4] = behaviours[:, 5:6]  # candidates that equal behaviours
  mask = rng.random((batch, length)) < 0.8
  mask[0] = True
  if batch > 1:
    mask[1] = False
    mask[1, length // 2] = True  # one valid behaviour
  if batch > 2:
    mask[2] = False  # no valid behaviour
  if batch > 3:
    mask[3] = np.arange(length) < 40  # a short history, padded at the end
  return codes, behaviours, mask


def _level(codes, behaviours, mask, k):
  return hamming_topk._level_top_k(tf.constant(codes), tf.constant(behaviours),
                                   tf.constant(mask), k)


def _sort(codes, behaviours, mask, k):
  return hamming_topk._sort_top_k(tf.constant(codes), tf.constant(behaviours),
                                  tf.constant(mask), k)


def _fused(codes, behaviours, mask, k):
  return fused_ops.load().eta_hamming_top_k(codes, behaviours, mask, k=k)


@pytest.mark.parametrize("num_bits,length,k", [
    (8, 600, 16),     # 9 levels for 600 behaviours: ties everywhere
    (64, 1024, 48),
    (64, 515, 1),
    (100, 700, 48),   # odd bit count in 2 words
    (128, 512, 16),
    (192, 530, 7),    # 3 words
    (64, 520, 600),   # k > L
])
def test_every_kernel_matches_numpy_with_ties_masks_and_long_histories(num_bits, length, k):
  """The TopK path, the level path and the fused op, bit for bit against NumPy."""
  rng = np.random.default_rng(num_bits * 1000 + length + k)
  inputs = _tie_heavy_inputs(rng, 4, 9, length, num_bits)
  want = np_top_k_many(*inputs, k)
  for name, path in (("sort", _sort), ("level", _level), ("fused", _fused)):
    got = path(*inputs, k)
    for g, w, what in zip(got, want, ("indices", "distances", "valid")):
      assert g.shape == (4, 9, k), (name, what)
      np.testing.assert_array_equal(g.numpy(), w, err_msg=f"{name} {what}")


def test_level_path_lists_everything_for_rows_the_sample_misjudges():
  """Every 8th behaviour is sampled; 11 sampled ones at distance 0 and the other
  sampled ones far away make the estimate 0, short of k: that row must still be
  exact (it falls back to listing every valid behaviour)."""
  length, k = 1024, 48
  candidate = np.zeros((1, 2, 1), np.int64)
  behaviours = np.full((1, length, 1), 0b11111, np.int64)  # distance 5 ...
  behaviours[0, ::8] = -1  # ... sampled positions: 64 ...
  behaviours[0, 0:88:8] = 0  # ... but 11 of them 0
  candidate[0, 1] = 0b111  # the second candidate: other distances, same history
  mask = np.ones((1, length), bool)
  want = np_top_k_many(candidate, behaviours, mask, k)
  for path in (_level, _sort, _fused):
    for got, w in zip(path(candidate, behaviours, mask, k), want):
      np.testing.assert_array_equal(got.numpy(), w)


def test_stock_dispatch_by_shape_in_graph_mode():
  """With dynamic C and L the stock kernel picks its path at run time; both agree."""
  layer = HammingTopK(5, kernel="stock")

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, 1], tf.int64), tf.TensorSpec([None, None, 1], tf.int64),
      tf.TensorSpec([None, None], tf.bool)])
  def retrieve(candidates, behaviours, mask):
    return layer([candidates, behaviours], behaviour_mask=mask)

  rng = np.random.default_rng(7)
  for candidates, length in ((3, 30), (3, 600), (hamming_topk._LEVEL_MIN_CANDIDATES, 30),
                             (hamming_topk._LEVEL_MIN_CANDIDATES, 600)):
    inputs = _tie_heavy_inputs(rng, 2, candidates, length, 64)
    for got, want in zip(retrieve(*inputs), np_top_k_many(*inputs, 5)):
      np.testing.assert_array_equal(got.numpy(), want)


def test_fused_threshold_search_across_rows_and_threads():
  """The fused op starts each row's threshold search at the previous row's: rows
  alternate between candidates equal to behaviours (threshold 0) and far ones,
  over enough rows that the intra-op pool shards them."""
  rng = np.random.default_rng(8)
  batch, candidates, length, k = 3, 200, 1024, 48
  behaviours = random_codes(rng, (batch, length), 64)
  codes = random_codes(rng, (batch, candidates), 64)
  codes[:, ::2] = behaviours[:, :candidates:2]  # threshold 0 for every other row
  codes[:, 1::4] = ~behaviours[:, 1:candidates:4]  # and far for some
  mask = rng.random((batch, length)) < 0.9
  want = np_top_k_many(codes, behaviours, mask, k)
  for got, w in zip(_fused(codes, behaviours, mask, k), want):
    np.testing.assert_array_equal(got.numpy(), w)
