"""Negative sampling for positive-only click logs (Taobao UserBehavior and the like).

For every positive, N items the user never clicked are drawn, from the positive's
category where it has enough of them and from the whole catalogue otherwise. This
is the protocol of the ETA and MIMN Taobao preprocessing. Every draw is seeded by
(seed, user, item, timestamp), so the result does not depend on the runner, the
bundle or the order in which users are processed.
"""

import bisect
import hashlib
import random
from typing import Dict, Iterable, List, Set, Tuple


def stable_seed(*parts) -> int:
  """A 64-bit seed from the parts' text (Python's hash() is salted per process)."""
  digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8)
  return int.from_bytes(digest.digest(), "little")


class NegativeSampler:
  """Draws non-clicked (item, category) pairs from a catalogue.

  Args:
    catalogue: (item_id, category) pairs; an item listed under several
      categories is drawn under each.
    negatives_per_positive: N, the draws per positive.
    seed: the ingest seed.
  """

  def __init__(self, catalogue: Iterable[Tuple[str, str]], negatives_per_positive: int,
               seed: int):
    self.n = negatives_per_positive
    self.seed = seed
    pairs = sorted(set(catalogue))
    self._all = pairs
    self._by_category: Dict[str, List[Tuple[str, str]]] = {}
    for item, category in pairs:
      self._by_category.setdefault(category, []).append((item, category))

  def sample(self, user_id: str, item_id: str, category: str, timestamp: int,
             clicked: Set[str]) -> List[Tuple[str, str]]:
    """N distinct (item, category) pairs whose item is not in `clicked`.

    Fewer than N come back only when the whole catalogue has fewer unclicked items.
    """
    rng = random.Random(stable_seed(self.seed, user_id, item_id, timestamp))
    chosen: List[Tuple[str, str]] = []
    taken = set()
    for pool in (self._by_category.get(category, ()), self._all):
      self._draw(pool, rng, clicked, taken, chosen)
      if len(chosen) == self.n:
        break
    return chosen

  def _draw(self, pool, rng, clicked, taken, chosen):
    # Rejection sampling while the pool is mostly unclicked; a bounded number of
    # tries, then a deterministic scan from a random offset so small pools finish.
    if not pool:
      return
    for _ in range(4 * self.n):
      if len(chosen) == self.n:
        return
      self._take(pool[rng.randrange(len(pool))], clicked, taken, chosen)
    start = rng.randrange(len(pool))
    for offset in range(len(pool)):
      if len(chosen) == self.n:
        return
      self._take(pool[(start + offset) % len(pool)], clicked, taken, chosen)

  @staticmethod
  def _take(pair, clicked, taken, chosen):
    if pair[0] not in clicked and pair[0] not in taken:
      taken.add(pair[0])
      chosen.append(pair)
