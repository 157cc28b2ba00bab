"""The Beam ingest: a click log -> train/valid/eval tf.Examples, dead letters and counts.

`ClickLogToExamples` is the whole transform; `write_ingest_outputs` lays its
results out as an ExampleGen output (Split-train/, Split-valid/ (with
IngestConfig.valid_fraction > 0), Split-eval/) plus dead_letter/ and the counts.
Both the TFX component and `eta ingest` use them.
"""

import json
import os
from typing import Any, Dict, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components import events, histories, side_features, sources, text_records
from components.events import RowError
from components.negatives import NegativeSampler
from eta_ctr.config import EtaConfig

DEAD_LETTER_DIR = "dead_letter"
STATS_FILE = "ingest_stats.json"
EXAMPLE_FILE_PREFIX = "data_tfrecord"  # ExampleGen's file name
IGNORED_COLUMNS = histories.IGNORED_COLUMNS


def parse_record(parser, record: text_records.RawRecord):
  """(Event, None), or (None, dead-letter record): nothing a row holds can raise.

  A parser's RowError keeps its reason; any other exception (a value of a type
  no rule expected) is a malformed_row naming the exception, so one bad row
  never fails the run.
  """
  if record.problem is not None:
    reason, detail = record.problem
  else:
    try:
      return parser(record)._replace(origin=record.origin), None
    except RowError as error:
      reason, detail = error.reason, error.detail
    except Exception as error:  # pylint: disable=broad-except
      reason, detail = events.MALFORMED_ROW, f"{type(error).__name__}: {error}"[:500]
  fields = text_records.dead_letter_fields(record)
  return None, events.dead_letter_record(fields.pop("row"), reason, detail, record.origin,
                                         **fields)


# The main output's type (dead letters go to a tagged output), declared because
# Beam's inference would otherwise see the TaggedOutput in it.
@beam.typehints.with_output_types(Tuple[str, events.Event])
class _ParseRows(beam.DoFn):
  """RawRecord -> (user_id, Event), or a dead-letter record on the `dead_letter` tag.

  A file's columns that are neither built-in nor declared go out once per
  (file, column) and worker on the `stats` tag ({IGNORED_COLUMNS: {column: {file: 1}}}).
  """

  def __init__(self, parser):
    self._parser = parser
    self._reported = None

  def setup(self):
    self._reported = set()

  def process(self, record):
    event, dead_letter = parse_record(self._parser, record)
    if event is None:
      yield beam.pvalue.TaggedOutput(histories.DEAD_LETTER, dead_letter)
      return
    if event.ignored:
      for column in event.ignored:
        if (record.source, column) not in self._reported:
          self._reported.add((record.source, column))
          yield beam.pvalue.TaggedOutput(
              histories.STATS, {IGNORED_COLUMNS: {column: {record.source: 1}}})
      event = event._replace(ignored=())
    yield event.user_id, event


class _BuildUserExamples(beam.DoFn):
  """(user_id, events) -> examples on `train`/`valid`/`eval`, plus dead letters and stats."""

  def __init__(self, ingest_config, features=()):
    self._config = ingest_config
    self._features = tuple(features)
    self._sampler = None
    self._sampler_source = None

  def process(self, user_and_events, catalogue=None, item_attributes=None):
    user_id, user_events = user_and_events
    sampler = None
    if catalogue is not None:
      # Side inputs are the same object for a bundle; build the sampler once.
      if self._sampler_source is not catalogue:
        self._sampler = NegativeSampler(catalogue, self._config.negatives_per_positive,
                                        self._config.seed)
        self._sampler_source = catalogue
      sampler = self._sampler
    for kind, payload in histories.build_user_examples(user_id, user_events, self._config,
                                                       sampler, self._features,
                                                       item_attributes):
      if kind == histories.EXAMPLE:
        split, serialized = payload
        yield beam.pvalue.TaggedOutput(split, serialized)
      else:
        yield beam.pvalue.TaggedOutput(kind, payload)


def merge_counts(total: Dict[str, Any], part: Dict[str, Any]) -> Dict[str, Any]:
  """Adds nested dicts of counts into `total` (keys are str or int)."""
  for key, value in part.items():
    if isinstance(value, dict):
      merge_counts(total.setdefault(key, {}), value)
    else:
      total[key] = total.get(key, 0) + value
  return total


class _MergeCounts(beam.CombineFn):

  def create_accumulator(self):
    return {}

  def add_input(self, accumulator, element):
    return merge_counts(accumulator, element)

  def merge_accumulators(self, accumulators):
    total = {}
    for accumulator in accumulators:
      merge_counts(total, accumulator)
    return total

  def extract_output(self, accumulator):
    return accumulator


def _timed_item_values(user_and_event, features):
  """(user_id, Event) -> (item_id, (timestamp, its item features' values)): the
  earliest row's values (ties: the smallest values) describe a sampled negative."""
  event = user_and_event[1]
  return event.item_id, (event.timestamp, side_features.item_values(features, event.side))


class ClickLogToExamples(beam.PTransform):
  """pipeline -> {each of config.ingest.split_names ('train', ['valid',] 'eval'):
  serialized tf.Examples, 'dead_letter': dicts, 'stats': one nested dict of counts}."""

  def __init__(self, config: EtaConfig):
    super().__init__()
    self._config = config

  def expand(self, pipeline):
    source, ingest = self._config.source, self._config.ingest
    features = self._config.features
    rows = pipeline | "ReadRows" >> sources.ReadRawRows(source)
    parsed = rows | "Parse" >> beam.ParDo(
        _ParseRows(sources.make_parser(source, features))).with_outputs(
            histories.DEAD_LETTER, histories.STATS, main="events")
    by_user = parsed.events | "GroupByUser" >> beam.GroupByKey()
    side_inputs = {}
    if ingest.negatives_per_positive > 0:
      side_inputs["catalogue"] = beam.pvalue.AsList(
          parsed.events
          | "CatalogueItems" >> beam.Map(lambda kv: (kv[1].item_id, kv[1].category))
          | "DistinctItems" >> beam.Distinct())
      if any(spec.entity == side_features.ITEM for spec in features):
        side_inputs["item_attributes"] = beam.pvalue.AsDict(
            parsed.events
            | "ItemFeatures" >> beam.Map(_timed_item_values, features)
            | "EarliestItemRow" >> beam.CombinePerKey(min)
            | "DropTime" >> beam.MapTuple(lambda item, timed: (item, timed[1])))
    built = by_user | "BuildHistories" >> beam.ParDo(
        _BuildUserExamples(ingest, features), **side_inputs).with_outputs(
            *events.SPLITS, histories.DEAD_LETTER, histories.STATS)

    dead_letter = ((parsed[histories.DEAD_LETTER], built[histories.DEAD_LETTER])
                   | "MergeDeadLetters" >> beam.Flatten())
    rows_read = (rows | "CountRows" >> beam.combiners.Count.Globally()
                 | "AsRowsRead" >> beam.Map(lambda n: {"rows_read": n}))
    parse_rejections = (
        parsed[histories.DEAD_LETTER]
        | "RejectionReason" >> beam.Map(lambda record: {"rejected": {record["reason"]: 1}}))
    stats = ((rows_read, parse_rejections, parsed[histories.STATS], built[histories.STATS])
             | "MergeStats" >> beam.Flatten()
             | "SumStats" >> beam.CombineGlobally(_MergeCounts()))
    return {**{split: built[split] for split in ingest.split_names},
            histories.DEAD_LETTER: dead_letter, histories.STATS: stats}


def write_ingest_outputs(outputs: Dict[str, beam.PCollection], output_dir: str):
  """Writes Split-<name>/*.gz (each split in `outputs`), dead_letter/*.jsonl and the
  raw counts under output_dir."""
  for split in (s for s in events.SPLITS if s in outputs):
    _ = (outputs[split] | f"Write[{split}]" >> beam.io.WriteToTFRecord(
        os.path.join(output_dir, f"Split-{split}", EXAMPLE_FILE_PREFIX),
        file_name_suffix=".gz", compression_type=beam.io.filesystem.CompressionTypes.GZIP))
  _ = (outputs[histories.DEAD_LETTER]
       | "DeadLetterJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True))
       | "WriteDeadLetters" >> beam.io.WriteToText(
           os.path.join(output_dir, DEAD_LETTER_DIR, "rows"), file_name_suffix=".jsonl"))
  _ = (outputs[histories.STATS]
       | "StatsJson" >> beam.Map(lambda s: json.dumps(s, sort_keys=True))
       | "WriteStats" >> beam.io.WriteToText(
           os.path.join(output_dir, STATS_FILE), shard_name_template=""))


def read_stats(output_dir: str) -> Dict[str, Any]:
  with FileSystems.open(os.path.join(output_dir, STATS_FILE)) as handle:
    return json.loads(handle.read().decode("utf-8"))
