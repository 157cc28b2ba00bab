"""Tests for SimHash and its bit packing."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.layers import simhash
from models.layers.simhash import SimHash


def np_pack(bits: np.ndarray) -> np.ndarray:
  """Reference packing through bytes: bit j -> word j // 64, bit j % 64, LSB first."""
  n = bits.shape[-1]
  words = -(-n // 64)
  padded = np.zeros(bits.shape[:-1] + (words * 64,), np.uint8)
  padded[..., :n] = bits
  packed = np.packbits(padded, axis=-1, bitorder="little")  # [..., 8 * words] bytes
  return np.ascontiguousarray(packed).view("<i8")


@pytest.mark.parametrize("num_bits", [1, 16, 63, 64, 65, 100, 128, 256, 300])
def test_pack_bits_matches_numpy_and_unpacks(num_bits):
  rng = np.random.default_rng(num_bits)
  bits = rng.random((3, 5, num_bits)) < 0.5
  codes = simhash.pack_bits(tf.constant(bits)).numpy()
  assert codes.dtype == np.int64
  assert codes.shape == (3, 5, -(-num_bits // 64))
  np.testing.assert_array_equal(codes, np_pack(bits))
  np.testing.assert_array_equal(simhash.unpack_bits(codes, num_bits).numpy(), bits)


def test_pack_bits_word_boundaries():
  bits = np.zeros((4, 64), bool)
  bits[1, 0] = True
  bits[2, 63] = True
  bits[3, :] = True
  codes = simhash.pack_bits(tf.constant(bits)).numpy()[:, 0]
  # Bit 63 is the int64 sign bit.
  np.testing.assert_array_equal(codes, [0, 1, np.iinfo(np.int64).min, -1])


def _inputs(shape, seed):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("num_bits", [16, 64, 100, 256])
def test_simhash_matches_numpy(num_bits):
  x = _inputs((3, 7, 16), seed=num_bits)
  layer = SimHash(num_bits=num_bits, seed=11)
  codes = layer(x).numpy()
  projection = layer.projection.numpy()
  assert projection.shape == (16, num_bits)
  projected = x.astype(np.float64) @ projection.astype(np.float64)
  # Float32 vs float64 rounding could flip a sign only right at zero.
  assert np.abs(projected).min() > 1e-4
  bits = projected > 0
  assert codes.dtype == np.int64 and codes.shape == (3, 7, -(-num_bits // 64))
  np.testing.assert_array_equal(codes, np_pack(bits))
  np.testing.assert_array_equal(layer.bits(x).numpy(), bits)
  # The unused high bits of the last word stay 0.
  unused = (-num_bits) % 64
  if unused:
    last = codes[..., -1]
    assert (last >= 0).all() and (last < 2 ** (64 - unused)).all()


def test_zero_embedding_hashes_to_zero():
  codes = SimHash(num_bits=70, seed=1)(np.zeros((2, 8), np.float32)).numpy()
  np.testing.assert_array_equal(codes, np.zeros((2, 2), np.int64))


def test_projection_is_seeded():
  x = _inputs((1, 8), seed=0)
  a, b, c = SimHash(32, seed=5), SimHash(32, seed=5), SimHash(32, seed=6)
  for layer in (a, b, c):
    layer(x)
  np.testing.assert_array_equal(a.projection.numpy(), b.projection.numpy())
  assert not np.array_equal(a.projection.numpy(), c.projection.numpy())


def test_rejects_bad_num_bits():
  with pytest.raises(ValueError):
    SimHash(num_bits=0)


def test_get_config_round_trip():
  layer = SimHash(num_bits=100, seed=7, name="hash")
  clone = layer.__class__.from_config(layer.get_config())
  assert (clone.num_bits, clone.seed, clone.name) == (100, 7, "hash")
  x = _inputs((2, 8), seed=1)
  np.testing.assert_array_equal(layer(x).numpy(), clone(x).numpy())


def _model_with_hash():
  """A trainable tower whose codes (as bits) also feed the output."""
  inputs = keras.Input((8,))
  embedding = keras.layers.Dense(8, name="tower")(inputs)
  hasher = SimHash(num_bits=16, seed=3, name="hash")
  codes = hasher(embedding)
  bits = tf.cast(simhash.unpack_bits(codes, 16), tf.float32)
  logits = keras.layers.Dense(1, name="head")(tf.concat([embedding, bits], -1))
  return keras.Model(inputs, [logits, codes]), hasher


def test_projection_stays_fixed_under_training():
  model, hasher = _model_with_hash()
  assert hasher.projection in hasher.non_trainable_weights
  assert not any(w is hasher.projection for w in model.trainable_weights)
  before = hasher.projection.numpy().copy()
  tower_before = model.get_layer("tower").kernel.numpy().copy()

  rng = np.random.default_rng(0)
  x = rng.normal(size=(32, 8)).astype(np.float32)
  y = rng.normal(size=(32, 1)).astype(np.float32)
  optimizer = keras.optimizers.SGD(0.1)
  for _ in range(3):
    with tf.GradientTape() as tape:
      logits, _ = model(x, training=True)
      loss = tf.reduce_mean((logits - y) ** 2)
    grads = tape.gradient(loss, model.trainable_weights + [hasher.projection])
    assert grads[-1] is None  # Nothing flows back into the projection.
    optimizer.apply_gradients(zip(grads[:-1], model.trainable_weights))

  assert not np.allclose(model.get_layer("tower").kernel.numpy(), tower_before)
  np.testing.assert_array_equal(hasher.projection.numpy(), before)


def test_saved_model_round_trip(tmp_path):
  model, hasher = _model_with_hash()
  x = _inputs((5, 8), seed=2)
  logits, codes = model(x)
  path = str(tmp_path / "model")
  model.save(path, save_format="tf")

  loaded = keras.models.load_model(path, custom_objects={"SimHash": SimHash})
  loaded_logits, loaded_codes = loaded(x)
  np.testing.assert_array_equal(loaded_codes.numpy(), codes.numpy())
  # Eager Keras vs the loaded graph (where grappler may fuse MatMul + BiasAdd): float32
  # sums of ~25 O(1) terms, so a few ulp apart; rtol alone fails for a logit near 0.
  np.testing.assert_allclose(loaded_logits.numpy(), logits.numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(
      loaded.get_layer("hash").projection.numpy(), hasher.projection.numpy())
  # The serving signature (no Keras on the loading side) gives the same codes.
  serving = tf.saved_model.load(path).signatures["serving_default"]
  served = serving(tf.constant(x))
  served_codes = [v for v in served.values() if v.dtype == tf.int64]
  assert len(served_codes) == 1
  np.testing.assert_array_equal(served_codes[0].numpy(), codes.numpy())
