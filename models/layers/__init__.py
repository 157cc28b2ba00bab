"""Keras layers of ETA: SimHash codes, Hamming top-k retrieval, target attention."""

from models.layers.hamming_topk import HammingTopK
from models.layers.hamming_topk import hamming_distance
from models.layers.simhash import SimHash
from models.layers.simhash import pack_bits
from models.layers.simhash import unpack_bits
from models.layers.target_attention import TargetAttention

__all__ = [
    "HammingTopK",
    "SimHash",
    "TargetAttention",
    "hamming_distance",
    "pack_bits",
    "unpack_bits",
]
