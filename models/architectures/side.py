"""Side features in the models: the declared user, item and context features
(components/side_features.py) turned into vectors.

Every declared feature becomes one vector of ModelConfig.embedding_dim (d):

  categorical       its embedding (a table of vocabulary_sizes() rows; 0 = padding)
  categorical_list  the mean of its values' embeddings, padding (0) left out;
                    zeros when it has no value
  numeric           Dense(d) of [z, missing]: the z-score and the missing
                    indicator, so a missing value has its own learned offset

Where the vectors go (models/architectures/base.py):

  user, context          into the MLP, once per example (shared by a request's
                         candidates)
  item, in_history       appended to the candidate vector (item ++ category ++
                         these) and, from the behaviour's own values, to every
                         long and short behaviour vector, so attention and
                         retrieval see them; ETA hashes them with the item
                         (models/architectures/eta.py)
  item, not in_history   into the MLP beside the candidate vector: behaviours have
                         no value of them, and the candidate and behaviour vectors
                         must stay the same size (and the same space) for
                         attention; this includes every categorical_list item
                         feature (in_history does not take lists yet)

With no declared feature nothing here exists and every model is what it was.
"""

import dataclasses
from typing import Dict, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from components import side_features

LONG_PREFIX = side_features.LONG_PREFIX
SHORT_PREFIX = side_features.SHORT_PREFIX
CANDIDATE_PREFIX = ""


@dataclasses.dataclass(frozen=True)
class SideFeatures:
  """The declared features a model reads and the table sizes of the categorical ones.

  Attributes:
    specs: FeatureSpecs (EtaConfig.features), in declaration order.
    vocab_sizes: {feature name: table rows} of every categorical / categorical_list
      feature (components.side_features.vocabulary_sizes).
  """
  specs: Tuple = ()
  vocab_sizes: Mapping[str, int] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    object.__setattr__(self, "specs", tuple(self.specs))
    object.__setattr__(self, "vocab_sizes", dict(self.vocab_sizes))
    missing = [spec.name for spec in self.specs
               if spec.kind in side_features.CATEGORICAL_KINDS
               and spec.name not in self.vocab_sizes]
    if missing:
      raise ValueError(f"no vocabulary size for the categorical features {missing}")

  def __bool__(self):
    return bool(self.specs)

  @property
  def request(self) -> Tuple:
    """User and context features: one value per example (per request in `score`)."""
    return tuple(s for s in self.specs if s.entity != side_features.ITEM)

  @property
  def items(self) -> Tuple:
    """Every item feature (a value per candidate)."""
    return tuple(s for s in self.specs if s.entity == side_features.ITEM)

  @property
  def history(self) -> Tuple:
    """Item features with history values: in candidate and behaviour vectors."""
    return tuple(s for s in self.items if s.in_history)

  @property
  def candidate_only(self) -> Tuple:
    """Item features without history values: an MLP input beside the candidate."""
    return tuple(s for s in self.items if not s.in_history)


def tensor_names(spec, prefix: str = CANDIDATE_PREFIX) -> Tuple[str, ...]:
  """The transformed tensors holding one feature's value(s): (NAME_idx,) or
  (NAME_z, NAME_missing), with `prefix` ("" the example's / candidate's own,
  long_ / short_ the history sequences)."""
  if spec.kind == side_features.NUMERIC:
    return (prefix + spec.name + side_features.ZSCORE_SUFFIX,
            prefix + spec.name + side_features.MISSING_SUFFIX)
  return (prefix + spec.name + side_features.INDEX_SUFFIX,)


def model_inputs(side: Optional[SideFeatures]) -> Tuple[str, ...]:
  """Every transformed tensor the models read for the declared features."""
  if not side:
    return ()
  names = []
  for spec in side.specs:
    names += tensor_names(spec)
    if spec.in_history:
      names += tensor_names(spec, LONG_PREFIX) + tensor_names(spec, SHORT_PREFIX)
  return tuple(names)


def values(specs: Sequence, inputs: Mapping[str, tf.Tensor],
           prefix: str = CANDIDATE_PREFIX) -> Tuple[Tuple[tf.Tensor, ...], ...]:
  """((tensors of spec 0), (tensors of spec 1), ...) out of `inputs` (tensor_names)."""
  return tuple(tuple(inputs[name] for name in tensor_names(spec, prefix)) for spec in specs)


class SideEncoder(keras.layers.Layer):
  """One embedding table (categorical kinds) or Dense(d) (numeric) per declared
  feature; `encode` maps a feature's tensors to [..., d] (module doc)."""

  def __init__(self, side: SideFeatures, dim: int, initializer, **kwargs):
    super().__init__(**kwargs)
    self.side = side
    self.dim = dim
    self.encoders: Dict[str, keras.layers.Layer] = {}
    for spec in side.specs:
      if spec.kind in side_features.CATEGORICAL_KINDS:
        layer = keras.layers.Embedding(side.vocab_sizes[spec.name], dim,
                                       embeddings_initializer=initializer,
                                       name=f"side_{spec.name}_embedding")
      else:
        layer = keras.layers.Dense(dim, kernel_initializer=initializer,
                                   name=f"side_{spec.name}_numeric")
      self.encoders[spec.name] = layer

  def encode(self, spec, tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """A feature's tensors (tensor_names order) [...] -> [..., d]; a
    categorical_list's index tensor is [..., max_values]."""
    layer = self.encoders[spec.name]
    if spec.kind == side_features.NUMERIC:
      z, missing = (tf.cast(t, tf.float32) for t in tensors)
      return layer(tf.stack([z, missing], -1))
    indices = tensors[0]
    if spec.kind == side_features.CATEGORICAL:
      return layer(indices)
    mask = tf.cast(indices > 0, tf.float32)[..., None]              # [..., M, 1]
    total = tf.reduce_sum(layer(indices) * mask, -2)
    return total / tf.maximum(tf.reduce_sum(mask, -2), 1.0)

  def encode_all(self, specs: Sequence, tensors: Sequence[Sequence[tf.Tensor]]) -> list:
    return [self.encode(spec, values_) for spec, values_ in zip(specs, tensors)]
