"""Recall of the SimHash top-k against the exact top-k of trained item embeddings, per bit count.

`eta bench retrieval` takes TRAINED item embeddings (an ETA model trained
through the project's Transform + Trainer path, cached under --work-dir, or the
table of an exported SavedModel with --model-dir) and real (candidate, history)
pairs of eval examples. For every bit count m and projection seed it selects the
k behaviours nearest the candidate in Hamming distance with ETA's own layers
(SimHash codes of the table, then HammingTopK, so the (distance, index) order is
the model's), and compares them with the exact top-k of the same history:

  * by inner product, what target attention scores;
  * by cosine, what SimHash estimates: this isolates the hashing error from the
    effect of the embedding norms.

recall@k = |SimHash top-k ∩ exact top-k| / k, averaged over the queries whose
history is longer than k (with k or fewer behaviours both select everything).
Exact ties (a repeated item, items sharing an OOV bucket) are not misses: a
selected behaviour that scores at least the k-th best exact score is a hit. The
floor is a random choice of k behaviours (expected recall k / n), and the same
measurement on the table at initialisation shows what training changed.

Writes DIR/retrieval.json, DIR/retrieval.md and DIR/retrieval.png.
"""

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import report

log = logging.getLogger(__name__)

METRICS = ("inner_product", "cosine")
METRIC_LABELS = {"inner_product": "IP", "cosine": "cos"}
# Checkpoint key of the item table in a SavedModel or checkpoint of a CtrModel
# (attribute path; optimizer slots end differently and do not match).
_EMBEDDING_KEY = re.compile(r"(^|/)item_embedding/embeddings/\.ATTRIBUTES/VARIABLE_VALUE$")
# Rows of [chunk, L, d] floats / [chunk, L, W] codes held at once.
_CHUNK_ELEMENTS = 1 << 23


@dataclasses.dataclass
class Setup:
  """What is measured: the tables and the queries.

  trained / initial: [V, d] item tables (row 0 is padding); initial may be None.
  candidates: [N] item indices; histories: [N, L] item indices, 0 = padding.
  """
  trained: np.ndarray
  initial: Optional[np.ndarray]
  candidates: np.ndarray
  histories: np.ndarray
  description: str
  details: Dict


def _int_list(text: str) -> List[int]:
  values = sorted({int(part) for part in text.split(",") if part.strip()})
  if not values or values[0] < 1:
    raise argparse.ArgumentTypeError(f"expected positive integers like 16,32, got {text!r}")
  return values


def add_arguments(parser) -> None:
  group = parser.add_argument_group("retrieval recall")
  group.add_argument("--data", default="movielens-100k",
                     help="movielens-100k, synthetic (a generated click log), a click log "
                          "PATH (see eta ingest), or synthetic-embeddings (a clustered "
                          "random table and histories, no training)")
  group.add_argument("--format", help="format of PATH (default: from its extension)")
  group.add_argument("--data-path", help="directory holding the named MovieLens data set")
  group.add_argument("--synth-events", type=int, default=100_000,
                     help="events of the generated log for --data synthetic")
  group.add_argument("--bits", type=_int_list, default=_int_list("16,32,64,128,256"),
                     help="hash bit counts to measure (default 16,32,64,128,256)")
  group.add_argument("--top-k", type=_int_list, default=_int_list("16,48"),
                     help="k values (default 16,48)")
  group.add_argument("--projection-seeds", type=int, default=5,
                     help="SimHash projections per bit count; the spread is reported")
  group.add_argument("--train-steps", type=int, default=1000,
                     help="steps of the ETA model whose embeddings are measured")
  group.add_argument("--max-queries", type=int, default=20_000,
                     help="eval (candidate, history) pairs used, a fixed sample (0 = all)")
  group.add_argument("--work-dir",
                     help="cache of the ingest + Transform pipeline and of the trained "
                          "table (default OUTPUT/retrieval_work)")
  group.add_argument("--model-dir",
                     help="measure the item table of this exported SavedModel (a version "
                          "directory, or a serving dir whose newest version is used) "
                          "instead of training one")
  group.add_argument("--pipeline-root",
                     help="with --model-dir: the pipeline root whose Transform made that "
                          "model (e.g. out/pipeline of `eta run`), for its eval queries")


# -- the measurement ---------------------------------------------------------


def _chunk_rows(histories: np.ndarray, width: int) -> int:
  return max(1, _CHUNK_ELEMENTS // max(1, histories.shape[1] * width))


def exact_scores(table: np.ndarray, candidates: np.ndarray, histories: np.ndarray,
                 metric: str) -> np.ndarray:
  """[N, L] float32 score of each behaviour for its candidate; -inf at padding."""
  table = np.asarray(table, np.float32)
  if metric == "cosine":
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    table = table / np.maximum(norms, 1e-12)
  elif metric != "inner_product":
    raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
  scores = np.empty(histories.shape, np.float32)
  step = _chunk_rows(histories, table.shape[1])
  for start in range(0, len(candidates), step):
    rows = slice(start, start + step)
    scores[rows] = np.einsum("nld,nd->nl", table[histories[rows]], table[candidates[rows]])
  scores[histories == 0] = -np.inf
  return scores


def simhash_top_k(table: np.ndarray, candidates: np.ndarray, histories: np.ndarray,
                  num_bits: int, seed: int, k: int) -> np.ndarray:
  """[N, k] int positions ETA retrieves: SimHash codes of the table, then HammingTopK.

  Slots that no valid behaviour fills (history of k or fewer) hold -1.
  """
  import tensorflow as tf
  from models.layers import HammingTopK, SimHash
  # Coding the table once is what an exported ETA model does (freeze_item_codes).
  codes = SimHash(num_bits=num_bits, seed=seed)(tf.constant(table, tf.float32)).numpy()
  top_k = HammingTopK(k)
  selected = np.empty((len(candidates), k), np.int64)
  step = _chunk_rows(histories, codes.shape[1])
  for start in range(0, len(candidates), step):
    rows = slice(start, start + step)
    indices, _, valid = top_k([codes[candidates[rows]], codes[histories[rows]]],
                              behaviour_mask=histories[rows] > 0)
    selected[rows] = np.where(valid.numpy(), indices.numpy(), -1)
  return selected


def kth_best(scores: np.ndarray, k: int) -> np.ndarray:
  """[N] the k-th best exact score of each row (-inf where fewer than k are valid)."""
  return -np.partition(-scores, k - 1, axis=1)[:, k - 1]


def recall_per_query(scores: np.ndarray, selected: np.ndarray, k: int,
                     threshold: Optional[np.ndarray] = None) -> np.ndarray:
  """[N] share of the first k selected positions that are in the exact top-k.

  A position is in the exact top-k when its score is at least the k-th best
  score of its row (`threshold`, computed when not given), so exact ties are
  never misses. Rows with fewer than k valid behaviours give the share of k
  they fill.
  """
  threshold = kth_best(scores, k) if threshold is None else threshold
  chosen = selected[:, :k]
  picked = np.take_along_axis(scores, np.maximum(chosen, 0), axis=1)
  hits = (chosen >= 0) & np.isfinite(picked) & (picked >= threshold[:, None])
  return hits.sum(axis=1) / float(k)


def random_recall(lengths: np.ndarray, k: int) -> float:
  """Expected recall of k behaviours drawn at random, over rows longer than k."""
  eligible = lengths[lengths > k]
  return float(np.mean(k / eligible)) if eligible.size else float("nan")


def _stats(values: Sequence[float]) -> Dict[str, float]:
  values = np.asarray(values, np.float64)
  return {"recall_mean": float(values.mean()), "recall_std": float(values.std()),
          "recall_min": float(values.min()), "recall_max": float(values.max())}


def measure(table: np.ndarray, candidates: np.ndarray, histories: np.ndarray,
            bits: Sequence[int], ks: Sequence[int], seeds: int, name: str) -> List[Dict]:
  """Rows {embeddings, metric, k, bits, recall_mean/std/min/max, queries}.

  Recall is averaged over the queries longer than k for one projection; mean,
  std, min and max are over the `seeds` projections.
  """
  lengths = (histories > 0).sum(axis=1)
  # Per (metric, k): which queries count, their exact scores and k-th best score.
  exact = {}
  for metric in METRICS:
    scores = exact_scores(table, candidates, histories, metric)
    for k in ks:
      eligible = lengths > k
      if eligible.any():
        exact[(metric, k)] = (eligible, scores[eligible], kth_best(scores[eligible], k))
  recalls: Dict[tuple, List[float]] = {}
  for num_bits in bits:
    started = time.time()
    for seed in range(seeds):
      selected = simhash_top_k(table, candidates, histories, num_bits, seed, max(ks))
      for (metric, k), (eligible, scores, threshold) in exact.items():
        per_query = recall_per_query(scores, selected[eligible], k, threshold)
        recalls.setdefault((metric, k, num_bits), []).append(float(per_query.mean()))
    log.info("retrieval: %s table, %d bits x %d projections in %.1fs", name, num_bits, seeds,
             time.time() - started)
  rows = []
  for (metric, k, num_bits), values in sorted(recalls.items()):
    rows.append(dict(embeddings=name, metric=metric, k=k, bits=num_bits,
                     queries=int((lengths > k).sum()), **_stats(values)))
  return rows


# -- embeddings and queries --------------------------------------------------


def synthetic_setup(items: int = 600, dim: int = 16, clusters: int = 12, queries: int = 400,
                    max_length: int = 96, seed: int = 0) -> Setup:
  """Clustered random embeddings and histories drawn from a few clusters per user.

  A stand-in with structure (for --smoke and tests); the 'initial' table is
  i.i.d. Gaussian, like a table at initialisation.
  """
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(clusters, dim))
  cluster_of = rng.integers(0, clusters, size=items)
  scale = rng.lognormal(0.0, 0.3, size=(items, 1))  # varied norms: IP != cosine
  trained = (centres[cluster_of] + 0.6 * rng.normal(size=(items, dim))) * scale
  trained[0] = 0.0  # padding
  lengths = rng.integers(8, max_length + 1, size=queries)
  histories = np.zeros((queries, max_length), np.int64)
  candidates = np.zeros(queries, np.int64)
  members = [np.flatnonzero(cluster_of[1:] == c) + 1 for c in range(clusters)]
  members = [m if m.size else np.arange(1, items) for m in members]
  for row in range(queries):
    interests = rng.choice(clusters, size=3, replace=False)
    picks = rng.choice(interests, size=lengths[row] + 1)
    drawn = [rng.choice(members[c]) for c in picks]
    candidates[row] = drawn[0]
    histories[row, :lengths[row]] = drawn[1:]
  initial = rng.normal(0.0, 0.05, size=(items, dim))
  initial[0] = 0.0
  return Setup(trained.astype(np.float32), initial.astype(np.float32), candidates, histories,
               "synthetic clustered embeddings (no training)",
               {"source": "synthetic", "vocabulary": items, "embedding_dim": dim})


def _saved_model_version(model_dir: str) -> str:
  """model_dir itself if it holds variables, else its newest numeric version."""
  if os.path.exists(os.path.join(model_dir, "variables", "variables.index")):
    return model_dir
  versions = [name for name in os.listdir(model_dir) if name.isdigit() and os.path.exists(
      os.path.join(model_dir, name, "variables", "variables.index"))]
  if not versions:
    raise FileNotFoundError(f"no SavedModel (variables/variables.index) in {model_dir} "
                            "or its version subdirectories")
  return os.path.join(model_dir, max(versions, key=int))


def saved_model_item_embeddings(model_dir: str) -> np.ndarray:
  """The [V, d] item table of an exported model, read from its variables (no graph load)."""
  import tensorflow as tf
  path = _saved_model_version(model_dir)
  reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
  keys = [key for key in reader.get_variable_to_shape_map() if _EMBEDDING_KEY.search(key)]
  if not keys:
    raise ValueError(f"no item_embedding/embeddings variable in {path}")
  log.info("retrieval: item table %s of %s", min(keys, key=len), path)
  return np.asarray(reader.get_tensor(min(keys, key=len)), np.float32)


def initial_table(model_config, vocabulary: int) -> np.ndarray:
  """The item table of a freshly built model (the seeded initialiser, untrained)."""
  import tensorflow as tf
  from models.architectures.registry import build_model
  model = build_model(model_config, vocabulary, 2)
  model.item_embedding(tf.constant([0], tf.int64))  # builds the table
  return model.item_embedding.embeddings.numpy()


def read_queries(examples_dir: str, tft_output, max_queries: int, seed: int = 0):
  """(candidates [N], histories [N, L]) of the transformed eval split; a fixed sample."""
  import tensorflow as tf
  from models import features
  spec = tft_output.transformed_feature_spec()
  spec = {name: spec[name] for name in (features.ITEM, features.LONG_ITEMS)}
  files = tf.io.gfile.glob(os.path.join(examples_dir, "Split-eval", "*"))
  dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP").batch(4096)
             .map(lambda records: tf.io.parse_example(records, spec)))
  candidates, histories = [], []
  for batch in dataset.as_numpy_iterator():
    candidates.append(batch[features.ITEM].reshape(-1))
    histories.append(batch[features.LONG_ITEMS])
  candidates, histories = np.concatenate(candidates), np.concatenate(histories)
  if max_queries and len(candidates) > max_queries:
    keep = np.sort(np.random.default_rng(seed).choice(len(candidates), max_queries,
                                                      replace=False))
    candidates, histories = candidates[keep], histories[keep]
  return candidates.astype(np.int64), histories.astype(np.int64)


def _pipeline_config(args, work_dir: str):
  from eta_ctr.config import EtaConfig, KERNEL_AUTO, TrainerConfig
  from eta_ctr.flags import resolve_source
  if not hasattr(args, "seed"):
    args.seed = 42  # resolve_source reads it for --data synthetic
  source = resolve_source(args, work_dir)
  base = EtaConfig.for_source(source)
  model = dataclasses.replace(base.model, name="eta", retrieval_kernel=KERNEL_AUTO)
  return base.replace(trainer=TrainerConfig(train_steps=args.train_steps), model=model)


def _transform_key(config) -> str:
  """What the Transform output depends on: the source, the ingest and L, S, vocab settings."""
  settings = {"source": dataclasses.asdict(config.source),
              "ingest": dataclasses.asdict(config.ingest),
              "transform": config.model.transform_settings()}
  return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _transform(config, args, work_dir: str):
  """(transform graph dir, transformed examples dir): --pipeline-root's, or ours.

  Ours is cached by a marker file: the pipeline's own cache does not help, as the
  click-log ExampleGen executes again on every run and so does all that follows.
  """
  from pipeline.compare import transform_outputs
  if args.pipeline_root:
    return transform_outputs(args.pipeline_root)
  marker = os.path.join(work_dir, f"transform_{_transform_key(config)}.json")
  if os.path.exists(marker):
    with open(marker) as handle:
      cached = json.load(handle)
    if all(os.path.isdir(cached[name]) for name in ("graph_dir", "examples_dir")):
      log.info("retrieval: Transform output from cache %s", marker)
      return cached["graph_dir"], cached["examples_dir"]
  from pipeline.local_runner import run_local
  pipeline_root = os.path.join(work_dir, "pipeline")
  log.info("retrieval: ingest + Transform under %s (minutes; cached for re-runs)",
           pipeline_root)
  started = time.time()
  run_local(config, pipeline_root, serving_dir=os.path.join(work_dir, "unused"),
            pipeline_name="eta_bench_retrieval", beam_pipeline_args=args.beam_args or None,
            through_transform=True)
  log.info("retrieval: Transform output ready in %.0fs", time.time() - started)
  graph_dir, examples_dir = transform_outputs(pipeline_root)
  report.write_json(marker, {"graph_dir": graph_dir, "examples_dir": examples_dir})
  return graph_dir, examples_dir


def _trained_table(config, graph_dir: str, examples_dir: str, work_dir: str):
  """(table, train metrics) of an ETA model trained on the Transform output; cached."""
  key = hashlib.sha1((config.to_json() + graph_dir).encode()).hexdigest()[:12]
  cache = os.path.join(work_dir, f"trained_item_embeddings_{key}.npz")
  if os.path.exists(cache):
    log.info("retrieval: trained table from cache %s", cache)
    with np.load(cache) as stored:
      return stored["table"], json.loads(str(stored["metrics"]))
  from components import events
  from models.trainer import train_model
  log.info("retrieval: training eta for at most %d steps", config.trainer.train_steps)
  valid = (os.path.join(examples_dir, f"Split-{events.SPLIT_VALID}", "*")
           if events.SPLIT_VALID in config.ingest.split_names else None)
  model, metrics = train_model(config, graph_dir, os.path.join(examples_dir, "Split-train", "*"),
                               valid)  # the stopping step is chosen on valid, never on eval
  table = model.item_embedding.embeddings.numpy()
  np.savez(cache, table=table, metrics=json.dumps(metrics))
  return table, metrics


def _check_vocabulary(model_dir: str, tft_output, rows: int, expected_rows: int) -> None:
  """The model's table must index the same vocabulary as the queries."""
  from models import features
  asset = os.path.join(_saved_model_version(model_dir), "assets", features.ITEM_VOCAB)
  if os.path.exists(asset):
    with open(asset, "rb") as ours, open(tft_output.vocabulary_file_by_name(
        features.ITEM_VOCAB), "rb") as theirs:
      if ours.read() != theirs.read():
        raise SystemExit(f"eta bench retrieval: {model_dir} was trained on another item "
                         "vocabulary than the Transform output; pass its --pipeline-root")
  if rows != expected_rows:
    raise SystemExit(f"eta bench retrieval: the model's item table has {rows} rows, the "
                     f"Transform output's vocabulary needs {expected_rows}")


def pipeline_setup(args, work_dir: str) -> Setup:
  """Trained (or --model-dir) table and the eval queries of a real Transform output."""
  import tensorflow_transform as tft
  from models.trainer import vocabulary_sizes
  config = _pipeline_config(args, work_dir)
  graph_dir, examples_dir = _transform(config, args, work_dir)
  tft_output = tft.TFTransformOutput(graph_dir)
  candidates, histories = read_queries(examples_dir, tft_output, args.max_queries)
  vocabulary = vocabulary_sizes(tft_output, config)[0]
  details = {"source": args.data, "vocabulary": int(vocabulary),
             "long_seq_len": config.model.long_seq_len, "transform_graph": graph_dir}
  if args.model_dir:
    table = saved_model_item_embeddings(args.model_dir)
    _check_vocabulary(args.model_dir, tft_output, table.shape[0], vocabulary)
    description = f"item table of the SavedModel {args.model_dir}"
    details["model_dir"] = args.model_dir
  else:
    table, metrics = _trained_table(config, graph_dir, examples_dir, work_dir)
    description = (f"ETA item embeddings trained {metrics.get('best_step', '?')} steps on "
                   f"{args.data} (valid AUC {metrics.get('valid_auc', float('nan')):.3f})")
    details.update(train_steps=config.trainer.train_steps, train_metrics=metrics,
                   trained_with_bits=config.model.hash_bits, trained_with_k=config.model.top_k)
  details["embedding_dim"] = int(table.shape[1])
  model_config = dataclasses.replace(config.model, embedding_dim=int(table.shape[1]))
  initial = initial_table(model_config, table.shape[0])
  return Setup(table, initial, candidates, histories, description, details)


# -- the report --------------------------------------------------------------


def _cell(rows: List[Dict], **where) -> str:
  for row in rows:
    if all(row[key] == value for key, value in where.items()):
      return f"{row['recall_mean']:.3f} ± {row['recall_std']:.3f}"
  return "-"


def markdown(result: Dict) -> str:
  rows, setup = result["rows"], result["setup"]
  tables = ["trained", "initial"] if result["initial_available"] else ["trained"]
  lines = ["## Retrieval recall: SimHash top-k vs the exact top-k", "",
           f"{'SMOKE (tiny sizes, not a measurement): ' if result['smoke'] else ''}"
           f"{setup['description']}; {setup['queries']:,} eval (candidate, history) pairs "
           f"(L = {setup['long_seq_len']}), d = {setup['embedding_dim']}, "
           f"{result['projection_seeds']} SimHash projections per bit count "
           "(mean ± std over them). Recall = |SimHash top-k ∩ exact top-k| / k over the "
           "histories longer than k; IP = exact inner-product top-k (what attention "
           "scores), cos = exact cosine top-k (what SimHash estimates). 'untrained' is the "
           "table at initialisation; 'random' is k behaviours drawn at random.", ""]
  for k in result["top_k"]:
    queries = next((row["queries"] for row in rows if row["k"] == k), 0)
    lines.append(f"k = {k}: {queries:,} histories longer than k")
    lines.append("")
    header = ["bits"] + [f"{'trained' if name == 'trained' else 'untrained'} "
                         f"{METRIC_LABELS[metric]}" for name in tables for metric in METRICS]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for num_bits in result["bits"]:
      cells = [_cell(rows, embeddings=name, metric=metric, k=k, bits=num_bits)
               for name in tables for metric in METRICS]
      lines.append(f"| {num_bits} | " + " | ".join(cells) + " |")
    floor = result["random_recall"].get(str(k), float("nan"))
    lines.append("| random | " + " | ".join([f"{floor:.3f}"] * (len(header) - 1)) + " |")
    lines.append("")
  return "\n".join(lines)


def plot(result: Dict, path: str) -> str:
  """Recall vs bits (log2 axis): per k, trained IP (solid), trained cosine (dashed),
  untrained IP (dotted) and the random floor (flat)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  figure, axes = plt.subplots(figsize=(7.5, 4.8))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  styles = {("trained", "inner_product"): "-", ("trained", "cosine"): "--",
            ("initial", "inner_product"): ":"}
  for index, k in enumerate(result["top_k"]):
    color = colors[index % len(colors)]
    for (name, metric), style in styles.items():
      rows = [r for r in result["rows"] if (r["embeddings"], r["metric"], r["k"]) ==
              (name, metric, k)]
      if rows:
        label = (f"k={k} {'untrained' if name == 'initial' else 'trained'} "
                 f"{METRIC_LABELS[metric]}")
        axes.errorbar([r["bits"] for r in rows], [r["recall_mean"] for r in rows],
                      yerr=[r["recall_std"] for r in rows], linestyle=style, marker="o",
                      markersize=3, color=color, capsize=2, label=label)
    floor = result["random_recall"].get(str(k))
    if floor is not None and floor == floor:
      axes.axhline(floor, color=color, linestyle="-.", linewidth=0.8,
                   label=f"k={k} random")
  axes.set_xscale("log", base=2)
  axes.set_xticks(result["bits"])
  axes.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
  axes.set_ylim(0.0, 1.02)
  axes.set_xlabel("SimHash bits")
  axes.set_ylabel("recall@k vs exact top-k")
  axes.set_title("SimHash top-k recall" + (" (SMOKE)" if result["smoke"] else ""))
  axes.grid(True, alpha=0.3)
  axes.legend(fontsize=7, ncol=2)
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path


# -- entry point --------------------------------------------------------------


def evaluate_setup(setup: Setup, bits: Sequence[int], ks: Sequence[int], seeds: int,
                   smoke: bool = False) -> Dict:
  """The JSON result of one setup (every table, metric, k and bit count)."""
  rows = measure(setup.trained, setup.candidates, setup.histories, bits, ks, seeds, "trained")
  if setup.initial is not None:
    rows += measure(setup.initial, setup.candidates, setup.histories, bits, ks, seeds,
                    "initial")
  lengths = (setup.histories > 0).sum(axis=1)
  details = dict(setup.details, description=setup.description, queries=int(len(lengths)),
                 history_length_mean=float(lengths.mean()) if lengths.size else 0.0,
                 long_seq_len=int(setup.histories.shape[1]))
  return {"rows": rows, "bits": list(bits), "top_k": list(ks), "projection_seeds": seeds,
          "random_recall": {str(k): random_recall(lengths, k) for k in ks},
          "initial_available": setup.initial is not None, "setup": details, "smoke": smoke}


def run(args) -> Dict:
  started = time.time()
  output = getattr(args, "output", "out/bench")
  smoke = bool(getattr(args, "smoke", False))
  bits, ks, seeds = list(args.bits), list(args.top_k), args.projection_seeds
  if smoke:
    # Training needs the ingest + Transform pipeline (minutes): smoke checks the
    # measurement on a stand-in instead.
    bits, seeds = [b for b in bits if b in (16, 64)] or bits[:2], min(seeds, 2)
    log.info("retrieval (smoke): synthetic clustered embeddings, no MovieLens training")
    setup = synthetic_setup(queries=200)
  elif args.data == "synthetic-embeddings":
    setup = synthetic_setup()
  else:
    work_dir = args.work_dir or os.path.join(output, "retrieval_work")
    os.makedirs(work_dir, exist_ok=True)
    setup = pipeline_setup(args, work_dir)
  log.info("retrieval: %s; %d queries, bits %s, k %s, %d projections", setup.description,
           len(setup.candidates), bits, ks, seeds)
  result = evaluate_setup(setup, bits, ks, seeds, smoke)
  result.update(machine=report.machine_info(), seconds=time.time() - started)
  text = markdown(result)
  report.write_json(os.path.join(output, "retrieval.json"), result)
  report.write_text(os.path.join(output, "retrieval.md"), text)
  plot(result, os.path.join(output, "retrieval.png"))
  result["markdown"] = text
  return result
