"""Ranked candidates, each with the past behaviours its score came from.

ETA's `score` returns, per candidate, the history positions it retrieved
(nearest in SimHash Hamming distance, -1 = none) and their distances; mapping
them back to the request's history shows which behaviours a score rests on.
"""

import dataclasses
from typing import List, Optional, Sequence

import numpy as np

from serving.requests import Behaviour, Candidate


@dataclasses.dataclass(frozen=True)
class Retrieved:
  position: int
  behaviour: Behaviour
  distance: int


@dataclasses.dataclass(frozen=True)
class Ranked:
  candidate: Candidate
  probability: float
  retrieved: List[Retrieved]


def rank(candidates: Sequence[Candidate], probabilities: np.ndarray,
         history: Sequence[Behaviour] = (), positions: Optional[np.ndarray] = None,
         distances: Optional[np.ndarray] = None) -> List[Ranked]:
  """Candidates by descending probability (ties keep request order)."""
  order = sorted(range(len(candidates)), key=lambda i: -float(probabilities[i]))
  ranked = []
  for i in order:
    retrieved = []
    if positions is not None:
      for slot, position in enumerate(positions[i].tolist()):
        if 0 <= position < len(history):
          distance = int(distances[i][slot]) if distances is not None else -1
          retrieved.append(Retrieved(position, history[position], distance))
    ranked.append(Ranked(candidates[i], float(probabilities[i]), retrieved))
  return ranked


def format_ranking(ranked: Sequence[Ranked], max_retrieved: int = 8) -> str:
  """A text table: rank, item, category, probability, then the retrieved behaviours."""
  width = max([len(r.candidate.item_id) for r in ranked] + [4])
  cat_width = max([len(r.candidate.category) for r in ranked] + [8])
  lines = [f"{'rank':>4}  {'item':<{width}}  {'category':<{cat_width}}  probability"]
  for number, entry in enumerate(ranked, 1):
    lines.append(f"{number:>4}  {entry.candidate.item_id:<{width}}  "
                 f"{entry.candidate.category:<{cat_width}}  {entry.probability:.6f}")
    if entry.retrieved:
      shown = ", ".join(f"#{r.position} {r.behaviour.item_id}/{r.behaviour.category} "
                        f"(d={r.distance})" for r in entry.retrieved[:max_retrieved])
      more = len(entry.retrieved) - max_retrieved
      lines.append(f"{'':>6}retrieved: {shown}" + (f", +{more} more" if more > 0 else ""))
  return "\n".join(lines)


def as_json(ranked: Sequence[Ranked]) -> list:
  return [{"item_id": r.candidate.item_id, "category": r.candidate.category,
           "probability": r.probability,
           "retrieved": [{"position": x.position, "item_id": x.behaviour.item_id,
                          "category": x.behaviour.category,
                          "timestamp": x.behaviour.timestamp, "distance": x.distance}
                         for x in r.retrieved]} for r in ranked]
