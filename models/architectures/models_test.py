"""Every model trains on generated data; ETA's retrieval and gradients behave as designed."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from eta_ctr.config import MODEL_NAMES, ModelConfig
from models import features
from models.architectures.registry import MODELS, build_model
from models.layers import hamming_distance
from models.testing import transformed_batch

CONFIG = ModelConfig(long_seq_len=32, short_seq_len=4, top_k=6, embedding_dim=8,
                     hash_bits=64, mlp_units=(16,), sdim_hash_rounds=4)


def _model(name, config=CONFIG):
  model = build_model(ModelConfig(**{**config.__dict__, "name": name}), 200, 12)
  model.compile(optimizer=keras.optimizers.Adam(0.01))
  return model


def test_registry_builds_exactly_the_configurable_models():
  assert sorted(MODELS) == sorted(MODEL_NAMES)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_trains_with_decreasing_loss(name):
  model = _model(name)
  batch = transformed_batch(CONFIG, 64, seed=1)
  dataset = tf.data.Dataset.from_tensors(batch).repeat(40)
  history = model.fit(dataset, epochs=1, verbose=0)
  first = model.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
  model.fit(dataset, epochs=2, verbose=0)
  later = model.evaluate(tf.data.Dataset.from_tensors(batch), return_dict=True, verbose=0)
  assert np.isfinite(history.history["loss"]).all()
  assert later["loss"] < first["loss"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_candidates_sharing_a_history_score_like_single_examples(name):
  model = _model(name)
  batch = transformed_batch(CONFIG, 5, seed=2)
  single = model(batch).numpy()
  # The same 5 candidates as one request against user 0's history.
  shared = {key: value[:1] for key, value in batch.items()}
  shared[features.ITEM] = batch[features.ITEM][None, :]
  shared[features.CATEGORY] = batch[features.CATEGORY][None, :]
  together = model.candidate_logits(shared).numpy()[0]
  history_0 = {key: tf.repeat(value[:1], 5, axis=0) for key, value in batch.items()}
  history_0[features.ITEM] = batch[features.ITEM]
  history_0[features.CATEGORY] = batch[features.CATEGORY]
  np.testing.assert_allclose(together, model(history_0).numpy(), atol=1e-5)
  assert single.shape == (5,)


def _one_user_many_candidates(config, candidates, seed, valid_behaviours=None):
  """User 0's history (its first valid_behaviours kept, the rest padding) against
  `candidates` candidates: C * k >= L, so inference takes the gathered path."""
  batch = transformed_batch(config, candidates, seed=seed)
  shared = {key: value[:1] for key, value in batch.items()}
  shared[features.ITEM] = batch[features.ITEM][None, :]
  shared[features.CATEGORY] = batch[features.CATEGORY][None, :]
  if valid_behaviours is not None:
    keep = tf.range(config.long_seq_len)[None, :] < valid_behaviours
    for name in (features.LONG_ITEMS, features.LONG_CATEGORIES, features.LONG_TIME_GAPS):
      shared[name] = tf.where(keep, shared[name], tf.zeros_like(shared[name]))
    shared[features.LONG_LENGTH] = tf.minimum(shared[features.LONG_LENGTH], valid_behaviours)
  return shared


@pytest.mark.parametrize("kernel", ["stock", "fused"])
@pytest.mark.parametrize("attention", ["dot", "din"])
@pytest.mark.parametrize("valid_behaviours", [None, 4, 0])  # all; fewer than k; none
def test_eta_inference_path_equals_the_training_path(kernel, attention, valid_behaviours):
  """candidate_logits at inference (TargetAttention.attend_gathered: the fused op, or
  the stock ops / DIN kernel split) == the differentiable path (training=True; no
  dropout here), within the tolerance of target_attention_test's comparison."""
  config = ModelConfig(**{**CONFIG.__dict__, "attention": attention, "retrieval_kernel": kernel})
  model = _model("eta", config)
  shared = _one_user_many_candidates(config, 20, seed=8, valid_behaviours=valid_behaviours)
  assert 20 * config.top_k >= config.long_seq_len
  inference = model.candidate_logits(shared).numpy()
  training = model.candidate_logits(shared, training=True).numpy()
  np.testing.assert_allclose(inference, training, rtol=1e-5, atol=1e-6)
  # The retrieval `score` computes once for its explanations, reused: the same logits.
  reused = model.candidate_logits(shared, retrieval=model.retrieve(shared)).numpy()
  np.testing.assert_array_equal(reused, inference)


def test_models_without_retrieval_refuse_a_retrieval():
  model = _model("din_long")
  shared = _one_user_many_candidates(CONFIG, 3, seed=9)
  with pytest.raises(TypeError):
    model.candidate_logits(shared, retrieval=(None, None, None))


def test_eta_retrieves_nearest_codes_and_never_padding():
  model = _model("eta")
  batch = transformed_batch(CONFIG, 16, seed=3)
  model(batch)
  per_candidate = dict(batch, **{features.ITEM: batch[features.ITEM][:, None],
                                 features.CATEGORY: batch[features.CATEGORY][:, None]})
  indices, distances, valid = (t.numpy()[:, 0] for t in model.retrieve(per_candidate))
  codes = model.item_codes(batch[features.LONG_ITEMS],
                           batch[features.LONG_CATEGORIES]).numpy()
  candidate_codes = model.item_codes(batch[features.ITEM], batch[features.CATEGORY]).numpy()
  lengths = batch[features.LONG_LENGTH].numpy()
  for row in range(16):
    assert valid[row].sum() == min(lengths[row], CONFIG.top_k)
    chosen = indices[row][valid[row]]
    assert (chosen < lengths[row]).all()  # padding never selected
    all_distances = hamming_distance(candidate_codes[row][None], codes[row][:lengths[row]])
    expected = np.argsort(all_distances.numpy(), kind="stable")[:CONFIG.top_k]
    np.testing.assert_array_equal(chosen, expected)


def test_eta_gradients_reach_retrieved_item_embeddings_and_projection_is_fixed():
  model = _model("eta")
  batch = transformed_batch(CONFIG, 8, seed=4)
  model(batch)
  projection = model.simhash.projection.numpy().copy()
  assert all(v is not model.simhash.projection for v in model.trainable_variables)
  with tf.GradientTape() as tape:
    loss = model.compute_loss(batch, training=True)
  gradient = tape.gradient(loss, model.item_embedding.embeddings)
  gradient = tf.convert_to_tensor(gradient).numpy()
  per_candidate = dict(batch, **{features.ITEM: batch[features.ITEM][:, None],
                                 features.CATEGORY: batch[features.CATEGORY][:, None]})
  indices, _, valid = (t.numpy()[:, 0] for t in model.retrieve(per_candidate))
  long_items = batch[features.LONG_ITEMS].numpy()
  short = set(batch[features.SHORT_ITEMS].numpy().ravel()) | set(batch[features.ITEM].numpy())
  retrieved = {long_items[r, i] for r in range(8) for i in indices[r][valid[r]]}
  only_retrieved = retrieved - short - {0}
  assert only_retrieved
  for item in only_retrieved:
    assert np.abs(gradient[item]).sum() > 0
  never_used = set(range(200)) - retrieved - short - set(long_items.ravel())
  for item in list(never_used)[:20]:
    assert np.abs(gradient[item]).sum() == 0
  model.fit(tf.data.Dataset.from_tensors(batch).repeat(5), verbose=0)
  np.testing.assert_array_equal(model.simhash.projection.numpy(), projection)


@pytest.mark.parametrize("hash_category", [True, False])
def test_frozen_code_table_equals_on_the_fly_codes(hash_category):
  config = ModelConfig(**{**CONFIG.__dict__, "hash_category": hash_category})
  model = _model("eta", config)
  batch = transformed_batch(config, 8, seed=5)
  before = model(batch).numpy()
  items, categories = batch[features.LONG_ITEMS], batch[features.LONG_CATEGORIES]
  live = model.item_codes(items, categories).numpy()
  # The codes are signs of projections; none is within float error of 0, so
  # equality below does not depend on how the matmul rounds.
  projected = model._project(model.item_embedding(items), 0)
  if hash_category:
    projected += model._project(model.category_embedding(categories), config.embedding_dim)
  assert np.abs(projected.numpy()).min() > 1e-5
  model.freeze_item_codes()
  assert model.frozen
  np.testing.assert_array_equal(model.item_codes(items, categories).numpy(), live)
  np.testing.assert_array_equal(model(batch).numpy(), before)


def test_hashing_category_makes_same_item_codes_differ_by_category():
  model = _model("eta")
  items = tf.constant([[5, 5, 5]], tf.int64)
  codes = model.item_codes(items, tf.constant([[1, 1, 2]], tf.int64)).numpy()[0]
  np.testing.assert_array_equal(codes[0], codes[1])
  assert (codes[0] != codes[2]).any()
  blind = _model("eta", ModelConfig(**{**CONFIG.__dict__, "hash_category": False}))
  codes = blind.item_codes(items, tf.constant([[1, 1, 2]], tf.int64)).numpy()[0]
  np.testing.assert_array_equal(codes[0], codes[2])


def test_eta_summary_adds_the_mean_of_the_long_sequence_to_eta():
  model = _model("eta_summary")
  batch = transformed_batch(CONFIG, 6, seed=6)
  model(batch)
  per_candidate = dict(batch, **{features.ITEM: batch[features.ITEM][:, None],
                                 features.CATEGORY: batch[features.CATEGORY][:, None]})
  candidates = model.candidate_vectors(per_candidate[features.ITEM],
                                       per_candidate[features.CATEGORY])
  interest = model.long_interest(per_candidate, candidates, training=False).numpy()[:, 0]
  vectors = tf.concat([model.item_embedding(batch[features.LONG_ITEMS]),
                       model.category_embedding(batch[features.LONG_CATEGORIES])], -1).numpy()
  assert not CONFIG.long_time_gaps  # the default: no time-gap embedding on long behaviours
  lengths = batch[features.LONG_LENGTH].numpy()
  for row in range(6):
    expected = vectors[row, :lengths[row]].mean(0) if lengths[row] else np.zeros(
        vectors.shape[-1])
    np.testing.assert_allclose(interest[row, -vectors.shape[-1]:], expected, atol=1e-6)
  attention_only = super(type(model), model).long_interest(per_candidate, candidates, False)
  np.testing.assert_allclose(interest[:, :-vectors.shape[-1]], attention_only.numpy()[:, 0],
                             atol=1e-6)


@pytest.mark.parametrize("long_time_gaps", [True, False])
def test_long_time_gaps_switch_the_time_gap_embedding_of_long_behaviours_only(long_time_gaps):
  from models.architectures.base import long_behaviours  # pylint: disable=g-import-not-at-top
  config = ModelConfig(**{**CONFIG.__dict__, "long_time_gaps": long_time_gaps})
  model = _model("din_long", config)
  batch = transformed_batch(config, 4, seed=7)
  model(batch)
  table = model.time_gap_embedding.embeddings
  table.assign(tf.random.stateless_normal(table.shape, seed=[1, 2]))  # zeros at init
  plain = tf.concat([model.item_embedding(batch[features.LONG_ITEMS]),
                     model.category_embedding(batch[features.LONG_CATEGORIES])], -1)
  gaps = model.time_gap_embedding(batch[features.LONG_TIME_GAPS])
  expected = plain + gaps if long_time_gaps else plain
  np.testing.assert_array_equal(long_behaviours(model, batch).numpy(), expected.numpy())
  short = model.behaviour_vectors(batch[features.SHORT_ITEMS], batch[features.SHORT_CATEGORIES],
                                  batch[features.SHORT_TIME_GAPS])
  assert np.abs(short.numpy() - tf.concat(
      [model.item_embedding(batch[features.SHORT_ITEMS]),
       model.category_embedding(batch[features.SHORT_CATEGORIES])], -1).numpy()).max() > 0
