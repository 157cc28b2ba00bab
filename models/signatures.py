"""The exported model's API: signature, input and output names.

models/export.py builds the signatures from these names and serving/ validates
and builds requests with them. It imports neither tf.Transform nor model code, so the
server and client can use it cheaply.
"""

from components import events

DEFAULT_SIGNATURE = "serving_default"
SCORE_SIGNATURE = "score"

# serving_default (and Classify / Regress): serialized raw tf.Examples [B].
EXAMPLES = "examples"

# score: one user's history [N] (most recent first) and C candidates [C].
HIST_ITEM_IDS = events.HIST_ITEM_IDS
HIST_CATEGORIES = events.HIST_CATEGORIES
HIST_TIMESTAMPS = events.HIST_TIMESTAMPS
HISTORY_INPUTS = (HIST_ITEM_IDS, HIST_CATEGORIES, HIST_TIMESTAMPS)
ITEM_IDS = "item_ids"
CATEGORIES = "categories"
CANDIDATE_INPUTS = (ITEM_IDS, CATEGORIES)
REQUEST_TIME = "request_time"

# Outputs: [B] / [C] probabilities; for ETA also [C, k] positions (-1 = none)
# into the request's history and their Hamming distances.
PROBABILITIES = "probabilities"
RETRIEVED_POSITIONS = "retrieved_positions"
RETRIEVED_DISTANCES = "retrieved_distances"

# The raw tf.Example features (the ingest's), for building examples client-side.
USER_ID = events.USER_ID
ITEM_ID = events.ITEM_ID
CATEGORY = events.CATEGORY
TIMESTAMP = events.TIMESTAMP
