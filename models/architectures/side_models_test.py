"""Every model with declared side features: trains, reads every feature, scores a
request's candidates like single examples; ETA hashes the item features."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from eta_ctr.config import FeatureSpec, ModelConfig
from models import features
from models.architectures import side
from models.architectures.registry import MODELS, build_model
from models.testing import transformed_batch

CONFIG = ModelConfig(long_seq_len=32, short_seq_len=4, top_k=6, embedding_dim=8,
                     hash_bits=64, mlp_units=(16,), sdim_hash_rounds=4,
                     embedding_init_stddev=0.3)
SPECS = (FeatureSpec("age", "user", "categorical"),
         FeatureSpec("device", "context", "categorical"),
         FeatureSpec("hour", "context", "numeric"),
         FeatureSpec("brand", "item", "categorical", in_history=True),
         FeatureSpec("price", "item", "numeric", in_history=True),
         FeatureSpec("genres", "item", "categorical_list", max_values=3),
         FeatureSpec("weight", "item", "numeric"))
SIDE = side.SideFeatures(SPECS, {"age": 9, "device": 4, "brand": 15, "genres": 11})


def _model(name, config=CONFIG, side_features=SIDE):
  model = build_model(ModelConfig(**{**config.__dict__, "name": name}), 200, 12, side_features)
  model.compile(optimizer=keras.optimizers.Adam(0.01))
  return model


def _batch(size, seed, config=CONFIG):
  return transformed_batch(config, size, seed=seed, side=SIDE)


def test_the_model_inputs_are_the_transform_contract():
  from components import side_features
  contract = {t.name for t in side_features.transformed_features(SPECS, 32, 4)}
  assert set(side.model_inputs(SIDE)) == contract
  assert contract <= set(_batch(2, 0))
  assert side.model_inputs(None) == () == side.model_inputs(side.SideFeatures())
  with pytest.raises(ValueError, match="brand"):
    side.SideFeatures(SPECS, {"age": 9, "device": 4, "genres": 11})


@pytest.mark.parametrize("name", ["eta", "din"])
def test_no_declared_feature_builds_the_model_as_before(name):
  batch = transformed_batch(CONFIG, 4, seed=0)
  config = ModelConfig(**{**CONFIG.__dict__, "name": name})
  keras.utils.set_random_seed(0)
  before = build_model(config, 200, 12)
  logits = before(batch).numpy()
  keras.utils.set_random_seed(0)
  empty = build_model(config, 200, 12, side.SideFeatures())
  np.testing.assert_array_equal(logits, empty(batch).numpy())
  assert before.count_params() == empty.count_params()
  assert [v.shape for v in before.variables] == [v.shape for v in empty.variables]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_trains_with_side_features(name):
  model = _model(name)
  batch = _batch(64, seed=1)
  dataset = tf.data.Dataset.from_tensors(batch).repeat(30)
  first = model.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
  history = model.fit(dataset, epochs=2, verbose=0)
  later = model.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
  assert np.isfinite(history.history["loss"]).all()
  assert later["loss"] < first["loss"]
  names = {v.name.split("/")[-2] for v in model.trainable_variables if "side_" in v.name}
  assert names == {f"side_{s.name}_{'numeric' if s.kind == 'numeric' else 'embedding'}"
                   for s in SPECS}


def _changed(batch, name, row=0):
  """The batch with tensor `name` changed in `row` (every real value of that row)."""
  value = batch[name].numpy().copy()
  if value.dtype.kind == "f":
    value[row] = value[row] + 1.5
  else:
    feature = next(s.name for s in SPECS if name in side.model_inputs(
        side.SideFeatures((s,), SIDE.vocab_sizes)))
    size = SIDE.vocab_sizes[feature]
    cycled = value[row] % (size - 1) + 1  # another index in [1, size)
    value[row] = np.where(value[row] > 0, cycled, 0) if name.startswith(
        ("long_", "short_")) else cycled
  return dict(batch, **{name: tf.constant(value, batch[name].dtype)})


# Each model reads every feature: the candidate's and the example's, and the
# history values through the sequences it reads (din: the short one only).
@pytest.mark.parametrize("name", sorted(MODELS))
def test_scores_change_when_a_feature_value_changes(name):
  model = _model(name)
  batch = _batch(6, seed=2)
  # A row with a long history, so every sequence has real behaviours.
  row = int(np.argmax(batch[features.LONG_LENGTH].numpy()))
  before = model(batch).numpy()
  names = list(side.model_inputs(SIDE))
  assert batch[features.LABEL].numpy()[row] == 1  # sim_hard retrieves something
  if name == "din":
    names = [n for n in names if not n.startswith("long_")]
  for tensor in names:
    after = model(_changed(batch, tensor, row)).numpy()
    assert abs(after[row] - before[row]) > 1e-7, tensor
    others = [r for r in range(6) if r != row]
    np.testing.assert_allclose(after[others], before[others], atol=1e-6, err_msg=tensor)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_candidates_sharing_a_history_score_like_single_examples_with_features(name):
  model = _model(name)
  batch = _batch(5, seed=3)
  single = model(batch).numpy()
  # The 5 candidates (with their item features) as one request against user 0's
  # history, user and context features.
  candidate_names = [features.ITEM, features.CATEGORY] + [
      n for spec in SIDE.items for n in side.tensor_names(spec)]
  shared = {key: value[:1] for key, value in batch.items()}
  for key in candidate_names:
    shared[key] = batch[key][None]
  together = model.candidate_logits(shared).numpy()[0]
  history_0 = {key: tf.repeat(value[:1], 5, axis=0) for key, value in batch.items()}
  for key in candidate_names:
    history_0[key] = batch[key]
  np.testing.assert_allclose(together, model(history_0).numpy(), atol=1e-5)
  np.testing.assert_allclose(together[0], single[0], atol=1e-5)


def test_eta_hashes_the_in_history_item_features():
  model = _model("eta")
  assert [s.name for s in model.hashed_features] == ["brand", "price"]
  assert model.hashed_dim == 4 * CONFIG.embedding_dim
  items = tf.constant([[5, 5, 5, 5]], tf.int64)
  categories = tf.constant([[1, 1, 1, 1]], tf.int64)
  brands = tf.constant([[3, 3, 4, 3]], tf.int64)
  prices = tf.constant([[0.5, 0.5, 0.5, -2.0]], tf.float32)
  missing = tf.zeros([1, 4], tf.float32)
  codes = model.item_codes(items, categories, ((brands,), (prices, missing))).numpy()[0]
  np.testing.assert_array_equal(codes[0], codes[1])
  assert (codes[0] != codes[2]).any()  # another brand
  assert (codes[0] != codes[3]).any()  # another price
  with pytest.raises(ValueError, match="brand"):
    model.item_codes(items, categories)
  blind = _model("eta", ModelConfig(**{**CONFIG.__dict__, "hash_category": False}))
  assert blind.hashed_features == ()
  codes = blind.item_codes(items, categories).numpy()[0]
  np.testing.assert_array_equal(codes[0], codes[2])


def test_eta_retrieval_follows_the_behaviours_item_features():
  model = _model("eta")
  batch = _batch(8, seed=4)
  per_candidate = model.per_candidate(batch)
  before = model.retrieve(per_candidate)[0].numpy()
  changed = dict(per_candidate)
  long_brand = batch["long_brand_idx"].numpy()
  changed["long_brand_idx"] = tf.constant(np.where(long_brand > 0, long_brand % 14 + 1, 0))
  after = model.retrieve(changed)[0].numpy()
  assert (before != after).any()


@pytest.mark.parametrize("hash_category", [True, False])
def test_frozen_tables_equal_on_the_fly_codes_with_features(hash_category):
  config = ModelConfig(**{**CONFIG.__dict__, "hash_category": hash_category})
  model = _model("eta", config)
  batch = _batch(8, seed=5, config=config)
  model.fit(tf.data.Dataset.from_tensors(batch).repeat(3), verbose=0)
  before = model(batch).numpy()
  items, categories = batch[features.LONG_ITEMS], batch[features.LONG_CATEGORIES]
  values = model.history_feature_values(batch, side.LONG_PREFIX)
  live = model.item_codes(items, categories, values).numpy()
  model.freeze_item_codes()
  assert model.frozen
  assert sorted(model.feature_projection_tables) == (["brand"] if hash_category else [])
  np.testing.assert_array_equal(model.item_codes(items, categories, values).numpy(), live)
  np.testing.assert_allclose(model(batch).numpy(), before, atol=1e-6)
