"""The one configuration object of the project.

Every stage (ingest, Transform, Trainer, serving, benchmarks) reads its settings
from an `EtaConfig`; the CLI and the TFX components only build or pass one. It
round-trips through JSON so it can travel as a TFX exec property or a file.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Optional

FORMATS = ("csv", "jsonl", "parquet", "movielens", "taobao")
SPLIT_MODES = ("per_user", "global_time")


@dataclasses.dataclass(frozen=True)
class SourceConfig:
  """Where the click log is and how to read it.

  Attributes:
    format: one of FORMATS. `csv`, `jsonl` and `parquet` are the generic table
      (columns user_id, item_id, [category], timestamp, label); `movielens` reads
      `u.data` + `u.item`; `taobao` reads the UserBehavior CSV.
    path: a file, a directory, or a glob. For `movielens` the ml-100k directory.
  """
  format: str = "movielens"
  path: str = ""

  def __post_init__(self):
    if self.format not in FORMATS:
      raise ValueError(f"unknown format {self.format!r}; expected one of {FORMATS}")


@dataclasses.dataclass(frozen=True)
class IngestConfig:
  """How click events become point-in-time training examples.

  Attributes:
    max_history: cap on the behaviours kept per example (most recent first).
    split: `per_user` puts each user's last `eval_fraction` of events in eval;
      `global_time` puts every event at or after `eval_cutoff` in eval.
    eval_fraction: share of each user's events in eval (per_user split).
    eval_cutoff: unix seconds (global_time split).
    negatives_per_positive: for positive-only logs, non-clicked items sampled per
      positive, from the same category where possible.
    history_includes_non_clicked: also put label-0 events into the history (and
      emit `hist_labels`).
    seed: seed of every random choice of the ingest.
  """
  max_history: int = 1024
  split: str = "per_user"
  eval_fraction: float = 0.2
  eval_cutoff: Optional[int] = None
  negatives_per_positive: int = 0
  history_includes_non_clicked: bool = False
  seed: int = 42

  def __post_init__(self):
    if self.max_history < 1:
      raise ValueError("max_history must be >= 1")
    if self.split not in SPLIT_MODES:
      raise ValueError(f"unknown split {self.split!r}; expected one of {SPLIT_MODES}")
    if self.split == "global_time" and self.eval_cutoff is None:
      raise ValueError("split='global_time' needs eval_cutoff (unix seconds)")
    if not 0.0 <= self.eval_fraction < 1.0:
      raise ValueError("eval_fraction must be in [0, 1)")
    if self.negatives_per_positive < 0:
      raise ValueError("negatives_per_positive must be >= 0")


@dataclasses.dataclass(frozen=True)
class EtaConfig:
  """Everything a run needs; sections are added as the pipeline grows."""
  source: SourceConfig = dataclasses.field(default_factory=SourceConfig)
  ingest: IngestConfig = dataclasses.field(default_factory=IngestConfig)

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), sort_keys=True)

  @classmethod
  def from_dict(cls, data: Dict[str, Any]) -> "EtaConfig":
    sections = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(sections)
    if unknown:
      raise ValueError(f"unknown config sections: {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
      section_type = sections[name].default_factory  # the section's dataclass
      kwargs[name] = section_type(**value)
    return cls(**kwargs)

  @classmethod
  def from_json(cls, text: str) -> "EtaConfig":
    return cls.from_dict(json.loads(text))

  def replace(self, **sections) -> "EtaConfig":
    return dataclasses.replace(self, **sections)
