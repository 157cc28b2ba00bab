"""Models by name: `build_model(config, item_vocab_size, category_vocab_size,
side_features=None)` (side_features: the declared side features and their table
sizes, models/architectures/side.SideFeatures; None = none).

To add a baseline: its class in baselines.py, its name in
eta_ctr.config.MODEL_NAMES (what --model accepts) and its entry here.
"""

from typing import Optional

from eta_ctr.config import ModelConfig
from models.architectures.baselines import (AvgPoolModel, DinLongModel, DinModel, SdimModel,
                                            SimHardModel)
from models.architectures.base import CtrModel
from models.architectures.eta import EtaModel, EtaSummaryModel
from models.architectures.side import SideFeatures

MODELS = {
    "eta": EtaModel,
    "eta_summary": EtaSummaryModel,
    "avg_pool": AvgPoolModel,
    "din": DinModel,
    "din_long": DinLongModel,
    "sim_hard": SimHardModel,
    "sdim": SdimModel,
}


def build_model(config: ModelConfig, item_vocab_size: int, category_vocab_size: int,
                side_features: Optional[SideFeatures] = None) -> CtrModel:
  if side_features:
    return MODELS[config.name](config, item_vocab_size, category_vocab_size,
                               side_features=side_features, name=config.name)
  return MODELS[config.name](config, item_vocab_size, category_vocab_size, name=config.name)
