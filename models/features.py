"""Names of the transformed features: the contract between Transform, models and serving.

Raw feature names come from `components.events`. Every index feature reserves 0
for padding; sequences are most recent first.
"""

from components import events

LABEL = events.LABEL
USER_ID = events.USER_ID  # passed through as bytes, for per-user metrics (GAUC)

ITEM = "item_idx"                      # [B] int64, candidate item
CATEGORY = "category_idx"              # [B] int64, candidate category
LONG_ITEMS = "long_item_idx"           # [B, L] int64
LONG_CATEGORIES = "long_category_idx"  # [B, L] int64
LONG_TIME_GAPS = "long_time_gap"       # [B, L] int64, log2-minute bucket, 0 = padding
LONG_LENGTH = "long_length"            # [B] int64, real entries in the long sequence
SHORT_ITEMS = "short_item_idx"         # [B, S] int64
SHORT_CATEGORIES = "short_category_idx"
SHORT_TIME_GAPS = "short_time_gap"
SHORT_LENGTH = "short_length"

MODEL_INPUTS = (ITEM, CATEGORY, LONG_ITEMS, LONG_CATEGORIES, LONG_TIME_GAPS, LONG_LENGTH,
                SHORT_ITEMS, SHORT_CATEGORIES, SHORT_TIME_GAPS, SHORT_LENGTH)

ITEM_VOCAB = "item_vocab"          # one vocabulary for candidate and history items
CATEGORY_VOCAB = "category_vocab"  # likewise for categories
