"""The Beam ingest on small logs: counts reconcile, dead letters, formats, determinism."""

import base64
import glob
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components import events, example_io, synth
from components.ingest_job import run_ingest
from eta_ctr.config import EtaConfig, FeatureSpec, IngestConfig, SourceConfig

HEADER = "user_id,item_id,category,timestamp,label"
# Logs of 1-2 events per user: half in eval, and no valid split (one train-period
# event per user rounds to no valid event, and an empty split fails the ingest).
TINY = dict(eval_fraction=0.5, valid_fraction=0.0)
# One bad row per rejection reason (duplicates are added separately).
BAD_ROWS = {
    events.MALFORMED_ROW: ["u1,i1,c1,100", "u1,i1,c1,100,1,extra", 'u1,"i1"x,c1,100,1'],
    events.MISSING_FIELD: [",i1,c1,100,1", "u1,,c1,100,1", "u1,i1,c1,,1", "u1,i1,c1,100,"],
    events.INVALID_FIELD: ["u1,i1\x07,c1,100,1"],
    events.BAD_TIMESTAMP: ["u1,i1,c1,last tuesday,1", "u1,i1,c1,1700000000000,1"],
    events.BAD_LABEL: ["u1,i1,c1,100,2", "u1,i1,c1,100,yes"],
}


@pytest.fixture(scope="module")
def small_log(tmp_path_factory):
  directory = tmp_path_factory.mktemp("log")
  rows = list(synth.generate(synth.SynthConfig(events=3000, mean_events_per_user=100,
                                               items=300, categories=12, seed=5)))
  return directory, rows


def _write_csv(path, rows, extra_lines=()):
  with open(path, "w") as handle:
    handle.write(HEADER + "\n")
    for row in rows:
      handle.write(",".join(map(str, row)) + "\n")
    for line in extra_lines:
      handle.write(line + "\n")


def _ingest(path, fmt, out, **ingest):
  config = EtaConfig(source=SourceConfig(format=fmt, path=str(path)),
                     ingest=IngestConfig(**ingest))
  return run_ingest(config, str(out))


def _records(out):
  return {split: sorted(example_io.read_records(str(out), split)) for split in events.SPLITS}


def test_counts_reconcile_with_bad_rows_of_every_kind(small_log, tmp_path):
  _, rows = small_log
  duplicates = [",".join(map(str, row)) for row in rows[:7]]
  bad = [line for lines in BAD_ROWS.values() for line in lines]
  path = tmp_path / "log.csv"
  _write_csv(path, rows, bad + duplicates)
  report = _ingest(path, "csv", tmp_path / "out")

  assert report["rows_read"] == len(rows) + len(bad) + len(duplicates)
  assert report["rows_valid"] == len(rows)
  rejected = report["rows_rejected"]
  for reason, lines in BAD_ROWS.items():
    assert rejected[reason] == len(lines), reason
  assert rejected[events.DUPLICATE] == len(duplicates)
  assert rejected["total"] == len(bad) + len(duplicates)
  assert report["rows_read"] == report["rows_valid"] + rejected["total"]
  assert sum(report["examples"].values()) == len(rows)
  # Every split's count is what is on disk; valid holds each user's last 10% of the
  # train period (the rule itself: components/histories_test.py).
  on_disk = {split: len(records) for split, records in _records(tmp_path / "out").items()}
  assert on_disk == report["examples"] and set(on_disk) == set(events.SPLITS)
  assert 0.07 < on_disk["valid"] / (on_disk["train"] + on_disk["valid"]) < 0.13

  dead = [json.loads(line) for f in glob.glob(str(tmp_path / "out/dead_letter/*.jsonl"))
          for line in open(f)]
  assert len(dead) == rejected["total"]
  assert sorted(d["row"] for d in dead) == sorted(bad + duplicates)
  assert all(d["reason"] in events.REJECTION_REASONS and d["detail"] for d in dead)
  first_bad_line = 2 + len(rows)  # the header is line 1
  assert sorted(int(d["source"].rsplit(":", 1)[1]) for d in dead
                if d["reason"] != events.DUPLICATE) == list(
                    range(first_bad_line, first_bad_line + len(bad)))
  assert all(d["source"].startswith(str(path) + ":") for d in dead)
  with open(tmp_path / "out/ingest_report.json") as handle:
    assert json.load(handle)["rows_read"] == report["rows_read"]


def test_formats_give_identical_examples_and_runs_are_deterministic(small_log, tmp_path):
  _, rows = small_log
  _write_csv(tmp_path / "log.csv", rows)
  with open(tmp_path / "log.jsonl", "w") as handle:
    for row in rows:
      handle.write(json.dumps(dict(zip(synth.COLUMNS, row))) + "\n")
  pq.write_table(pa.table({c: list(v) for c, v in zip(synth.COLUMNS, zip(*rows))}),
                 tmp_path / "log.parquet")
  results = {}
  for fmt in ("csv", "jsonl", "parquet"):
    _ingest(tmp_path / f"log.{fmt}", fmt, tmp_path / fmt)
    results[fmt] = _records(tmp_path / fmt)
  _ingest(tmp_path / "log.csv", "csv", tmp_path / "csv_again")
  assert _records(tmp_path / "csv_again") == results["csv"]  # byte-identical examples
  assert results["jsonl"] == results["csv"]
  assert results["parquet"] == results["csv"]
  assert sum(len(records) for records in results["csv"].values()) == len(rows)
  assert all(results["csv"][split] for split in events.SPLITS)  # valid included


def test_taobao_positive_only_log_with_negative_sampling(tmp_path):
  lines = [f"{u},{i},{i % 5},{b},{1511544070 + 60 * k}"
           for k, (u, i, b) in enumerate((u, (u * 7 + k) % 40, "pv")
                                         for u in range(6) for k in range(12))]
  path = tmp_path / "UserBehavior.csv"
  path.write_text("\n".join(lines + ["1,2,3,click,1511544070"]) + "\n")
  report = _ingest(path, "taobao", tmp_path / "out", negatives_per_positive=2)
  assert report["rows_read"] == len(lines) + 1
  assert report["rows_rejected"]["invalid_field"] == 1
  valid = report["rows_valid"]
  assert report["negatives_sampled"] == 2 * valid
  examples = [ex for split in events.SPLITS
              for ex in example_io.read_examples(str(tmp_path / "out"), split)]
  assert len(examples) == 3 * valid
  assert sum(ex["label"][0] for ex in examples) == valid


def _dead_letters(out):
  return [json.loads(line) for f in glob.glob(str(out / "dead_letter" / "*.jsonl"))
          for line in open(f)]


def _users(out):
  return {ex["user_id"][0] for split in events.SPLITS
          for ex in example_io.read_examples(str(out), split)}


def _reconciles(report):
  return report["rows_read"] == report["rows_valid"] + report["rows_rejected"]["total"]


GOOD = [("u1", "i1", "c1", 1600000000, 1), ("u1", "i2", "c1", 1600000060, 0),
        ("u2", "i1", "c2", 1600000000, 1), ("u2", "i3", "c2", 1600000100, 1)]


def test_each_files_header_governs_that_file(tmp_path):
  """Two files order the columns differently: ids must not swap between columns."""
  (tmp_path / "logs").mkdir()
  (tmp_path / "logs" / "a.csv").write_text(
      "user_id,item_id,category,timestamp,label\n" +
      "".join(f"{u},{i},{c},{t},{l}\n" for u, i, c, t, l in GOOD[:2]))
  (tmp_path / "logs" / "b.csv").write_text(
      "item_id,label,user_id,timestamp,category,extra\n" +
      "".join(f"{i},{l},{u},{t},{c},x\n" for u, i, c, t, l in GOOD[2:]))
  report = _ingest(tmp_path / "logs", "csv", tmp_path / "out", **TINY)
  assert (report["users"], report["rows_valid"], report["rows_rejected"]["total"]) == (2, 4, 0)
  assert _users(tmp_path / "out") == {"u1", "u2"}


def test_a_file_without_a_usable_header_is_an_error_naming_it(tmp_path):
  (tmp_path / "logs").mkdir()
  (tmp_path / "logs" / "a.csv").write_text("user_id,item_id,timestamp,label\nu1,i1,1,1\n")
  (tmp_path / "logs" / "b.csv").write_text("u2,i2,5,1\n")  # no header
  with pytest.raises(ValueError, match="b.csv.*lacks required columns"):
    _ingest(tmp_path / "logs", "csv", tmp_path / "out")


def test_an_undecodable_byte_is_one_dead_letter_and_the_run_completes(tmp_path):
  path = tmp_path / "log.csv"
  lines = [b"user_id,item_id,category,timestamp,label"]
  lines += [f"{u},{i},{c},{t},{l}".encode() for u, i, c, t, l in GOOD]
  lines.insert(2, b"u1,caf\xe9,c1,1600000030,1")  # Latin-1, not UTF-8
  path.write_bytes(b"\n".join(lines) + b"\n")
  out = tmp_path / "out"
  report = _ingest(path, "csv", out, **TINY)
  assert report["rows_read"] == 5 and report["rows_valid"] == 4 and _reconciles(report)
  assert report["rows_rejected"][events.BAD_ENCODING] == 1
  (dead,) = _dead_letters(out)
  assert dead["reason"] == events.BAD_ENCODING and dead["source"] == f"{path}:3"
  assert base64.b64decode(dead["row_base64"]) == b"u1,caf\xe9,c1,1600000030,1"
  assert not glob.glob(str(out / "**" / "beam-temp*"), recursive=True)


@pytest.mark.parametrize("fmt", ["taobao", "jsonl", "csv"])
def test_a_byte_order_mark_is_not_data(tmp_path, fmt):
  bom = b"\xef\xbb\xbf"
  if fmt == "taobao":
    body = b"1,10,100,pv,1511544070\n1,11,100,pv,1511544130\n2,10,100,pv,1511544070\n"
  elif fmt == "jsonl":
    body = b"".join(json.dumps(dict(zip(synth.COLUMNS, row))).encode() + b"\n"
                    for row in GOOD)
  else:
    body = HEADER.encode() + b"\n" + b"".join(
        ",".join(map(str, row)).encode() + b"\n" for row in GOOD)
  (tmp_path / "logs").mkdir()
  for name in ("a", "b"):  # in every file of a directory
    (tmp_path / "logs" / f"{name}.{'csv' if fmt == 'taobao' else fmt}").write_bytes(
        bom + body)
  report = _ingest(tmp_path / "logs", fmt, tmp_path / "out", **TINY)
  assert report["rows_rejected"]["total"] == report["rows_read"] // 2  # b's rows: duplicates
  assert report["rows_rejected"][events.DUPLICATE] == report["rows_rejected"]["total"]
  users = _users(tmp_path / "out")
  assert all(not user.startswith("\ufeff") for user in users)
  assert len(users) == (2 if fmt == "taobao" else 2)


def test_a_quoted_record_across_lines_is_one_row(tmp_path):
  path = tmp_path / "log.csv"
  path.write_text('user_id,item_id,note,timestamp,label\n'
                  'u1,i1,"line one\nline two, ""quoted""",1600000000,1\n'
                  'u1,i2,plain,1600000060,0\n')
  report = _ingest(path, "csv", tmp_path / "out", **TINY)
  assert (report["rows_read"], report["rows_valid"]) == (2, 2)


def test_parquet_files_with_their_own_schemas_and_a_value_of_the_wrong_type(tmp_path):
  (tmp_path / "logs").mkdir()
  pq.write_table(pa.table({"user_id": ["u1", "u1"], "item_id": [1, 2],
                           "timestamp": [1600000000, 1600000060], "label": [1, 0]}),
                 tmp_path / "logs" / "a.parquet")
  pq.write_table(pa.table({"label": [1, 1], "timestamp": ["2020-09-13T12:26:40Z", "x"],
                           "item_id": [[1, 2], [3]], "user_id": ["u2", "u2"]}),
                 tmp_path / "logs" / "b.parquet")
  report = _ingest(tmp_path / "logs", "parquet", tmp_path / "out", **TINY)
  assert report["rows_read"] == 4 and report["rows_valid"] == 2 and _reconciles(report)
  assert report["rows_rejected"][events.INVALID_FIELD] == 2  # item_id is a list


def test_a_directory_mixing_every_dirty_case_completes_and_reconciles(tmp_path):
  """BOM, per-file headers, gzip, CRLF, RFC 4180 records across lines, timestamp
  dialects, long Unicode ids, a Latin-1 byte, a stray quote, a wrong column count,
  milliseconds and a blank line, in one directory."""
  import gzip
  logs = tmp_path / "logs"
  logs.mkdir()
  cjk, emoji = "\u5546" * 300, "\U0001F600" * 200
  (logs / "a.csv").write_bytes(b"\xef\xbb\xbf" + (
      "user_id,item_id,note,timestamp,label\r\n"
      'u1,i1,"two\nlines, ""quoted""",2020-09-01T12:00:00Z,1\r\n'
      "u1,i2,,2020-09-01 12:01:00 UTC,0\r\n"
      "u1,i3,x,2020-09-01T14:02:00+0200,1\r\n"
      "\r\n"
      "u2,i1,x,20200901T120000Z,1\r\n").encode())
  (logs / "b.csv.gz").write_bytes(gzip.compress((
      "label,timestamp,category,user_id,item_id\n"
      f"1,1598961600,c1,u3,{cjk}\n"
      f"0,1598961660.5,c1,u3,{emoji}\n"
      "1,1598961720,c2,u2,i9\n").encode()))
  (logs / "c.csv").write_bytes(
      b"item_id,user_id,timestamp,label\n"
      b"caf\xe9,u4,1598961600,1\n"           # bad_encoding
      b'"i5,u4,1598961600,1\n'                # a quote never closed: malformed_row
      b"i6,u4,1598961600\n"                   # 3 columns: malformed_row
      b"i7,u4,1598961600000,1\n"              # milliseconds: bad_timestamp
      b"i8,u4,1598961600,1\n"
      b"i9,u4,1598961660,0\n")
  (logs / "README.txt").write_text("not a log\n")  # not a .csv: not read
  out = tmp_path / "out"
  report = _ingest(logs, "csv", out, **TINY)
  rejected = report["rows_rejected"]
  assert report["rows_read"] == 4 + 3 + 6  # the blank line and the headers are not rows
  assert report["rows_valid"] == 4 + 3 + 2
  assert (rejected[events.BAD_ENCODING], rejected[events.MALFORMED_ROW],
          rejected[events.BAD_TIMESTAMP], rejected["total"]) == (1, 2, 1, 4)
  assert _reconciles(report)
  assert report["users"] == 4
  examples = [ex for split in events.SPLITS for ex in example_io.read_examples(str(out), split)]
  assert {ex["item_id"][0] for ex in examples} == {"i1", "i2", "i3", cjk, emoji, "i9", "i8"}
  assert {ex["timestamp"][0] for ex in examples if ex["user_id"][0] == "u1"} == {
      1598961600, 1598961660, 1598961720}
  dead = {d["source"].rsplit("/", 1)[1]: d["reason"] for d in _dead_letters(out)}
  assert dead == {"c.csv:2": events.BAD_ENCODING, "c.csv:3": events.MALFORMED_ROW,
                  "c.csv:4": events.MALFORMED_ROW, "c.csv:5": events.BAD_TIMESTAMP}


# Side features: one user categorical, one item numeric (kept in the history), one
# context categorical, plus a column nobody declared.
SIDE = (FeatureSpec("age", "user", "categorical"),
        FeatureSpec("price", "item", "numeric", in_history=True),
        FeatureSpec("device", "context", "categorical"))
SIDE_HEADER = "user_id,item_id,category,timestamp,label,age,price,device,campaign"
SIDE_ROWS = ["u1,i1,c1,1600000000,1,25-34,9.5,app,x",
             "u1,i2,c1,1600000060,0,25-34,,web,x",      # price missing: 0 + price_missing
             "u1,i3,c2,1600000120,1,25-34,12,app,x",
             "u2,i1,c1,1600000000,1,,8.0,app,y",        # age missing: "" (an OOV bucket)
             "u2,i3,c2,1600000100,1,,4.25,,y",
             "u2,i4,c2,1600000200,1,,3,app,y"]
BAD_PRICE = "u2,i5,c2,1600000300,1,,cheap,app,y"


def _ingest_with_features(path, out, features=SIDE, **ingest):
  config = EtaConfig(source=SourceConfig(format="csv", path=str(path)),
                     ingest=IngestConfig(**{**TINY, **ingest}), features=features)
  return run_ingest(config, str(out), min_split_examples=0)


def test_side_feature_columns_travel_onto_the_examples(tmp_path):
  path = tmp_path / "log.csv"
  path.write_text("\n".join([SIDE_HEADER] + SIDE_ROWS + [BAD_PRICE]) + "\n")
  out = tmp_path / "out"
  report = _ingest_with_features(path, out)
  assert (report["rows_read"], report["rows_valid"]) == (7, 6) and _reconciles(report)
  assert report["rows_rejected"][events.INVALID_FIELD] == 1
  (dead,) = _dead_letters(out)
  assert (dead["reason"], dead["detail"]) == (events.INVALID_FIELD,
                                               "price 'cheap' is not a number")
  assert dead["row"] == BAD_PRICE and dead["source"] == f"{path}:8"
  assert report["ignored_columns"] == {"campaign": 1}  # reported, never silently dropped
  side = report["side_features"]
  assert {name: v["rows"] for name, v in side["missing_values"].items()} == {
      "age": 3, "price": 1, "device": 1}
  assert side["bytes_per_example"] > side["bytes_per_example_without_history_features"] > 0

  examples = {(ex["user_id"][0], ex["item_id"][0]): ex for split in events.SPLITS
              for ex in example_io.read_examples(str(out), split)}
  assert len(examples) == 6
  first = examples[("u1", "i1")]
  assert (first["age"], first["price"], first["price_missing"], first["device"]) == (
      ["25-34"], [9.5], [0], ["app"])
  assert "campaign" not in first
  missing_price = examples[("u1", "i2")]
  assert (missing_price["price"], missing_price["price_missing"]) == ([0.0], [1])
  assert examples[("u2", "i1")]["age"] == [""] and examples[("u2", "i3")]["device"] == [""]
  # hist_price: each behaviour's own price, parallel to hist_item_ids (clicks only).
  last = examples[("u2", "i4")]
  assert last["hist_item_ids"] == ["i3", "i1"]
  assert last["hist_price"] == [4.25, 8.0] and last["hist_price_missing"] == [0, 0]
  # Without features the same log gives the examples it always gave.
  plain = _ingest(path, "csv", tmp_path / "plain", **TINY)
  assert plain["ignored_columns"] == {"age": 1, "campaign": 1, "device": 1, "price": 1}
  assert "side_features" not in plain
  assert all(set(ex) == {"user_id", "item_id", "category", "timestamp", "label",
                         "hist_item_ids", "hist_categories", "hist_timestamps"}
             for split in events.SPLITS
             for ex in example_io.read_examples(str(tmp_path / "plain"), split))


def test_a_declared_column_missing_from_a_file_is_an_error_naming_both(tmp_path):
  (tmp_path / "logs").mkdir()
  (tmp_path / "logs" / "a.csv").write_text("\n".join([SIDE_HEADER] + SIDE_ROWS) + "\n")
  (tmp_path / "logs" / "b.csv").write_text(
      "user_id,item_id,category,timestamp,label,age,device\nu3,i1,c1,1600000000,1,18,app\n")
  with pytest.raises(ValueError, match=r"b\.csv: the declared feature column 'price' is not"):
    _ingest_with_features(tmp_path / "logs", tmp_path / "out")


def test_sampled_negatives_take_their_items_earliest_features(tmp_path):
  path = tmp_path / "log.csv"
  u3 = "u3,i2,c1,1600000500,1,40,6.0,app,z"  # its negatives: i1, i3, i4
  path.write_text("\n".join([SIDE_HEADER] + SIDE_ROWS + [u3]) + "\n")
  out = tmp_path / "out"
  report = _ingest_with_features(path, out, negatives_per_positive=3)
  assert report["negatives_sampled"] > 0
  # The earliest row's price (i3: 4.25 at t=100, not 12 at t=120; i1: a tie at the
  # same second, the smaller values; i2: its first row had none).
  earliest = {"i1": ([8.0], [0]), "i2": ([0.0], [1]), "i3": ([4.25], [0]), "i4": ([3.0], [0])}
  negatives = [ex for split in events.SPLITS for ex in example_io.read_examples(str(out), split)
               if ex["user_id"] == ["u3"] and ex["label"] == [0]]
  assert sorted(ex["item_id"][0] for ex in negatives) == ["i1", "i3", "i4"]
  for ex in negatives:
    assert (ex["price"], ex["price_missing"]) == earliest[ex["item_id"][0]], ex
    assert (ex["age"], ex["device"]) == (["40"], ["app"])  # the positive's user and context


# MovieLens-100k's user and genre columns (components/movielens.py): user 3 has
# no u.user row (missing values), user 4's age is unusable (a dead letter when
# age is declared); movie 30 has no genre.
ML_100K_USERS = {
    "u.user": "1|24|M|technician|85711\n2|53|F|other|T8H1N\n4|forty|M|writer|10001\n",
    "u.item": "".join(f"{movie}|Film {movie} (1995)|01-Jan-1995||http://x|{flags}\n"
                      for movie, flags in ((10, "0|0|0|0|0|1" + "|0" * 13),
                                           (20, "0|1" + "|0" * 6 + "|1" + "|0" * 10),
                                           (30, "1" + "|0" * 18))),
    "u.data": "".join(f"{user}\t{movie}\t{stars}\t{881250949 + t}\n" for user, movie, stars, t in (
        (1, 10, 5, 100), (1, 20, 3, 200), (1, 30, 4, 300), (2, 20, 4, 100), (2, 10, 5, 200),
        (3, 10, 4, 100), (3, 30, 2, 200), (4, 10, 5, 100))),
}


def test_declared_movielens_user_features_land_on_the_examples(tmp_path):
  from components import movielens
  from eta_ctr.config import features_from_dicts
  directory = tmp_path / "ml-100k"
  directory.mkdir()
  for name, text in ML_100K_USERS.items():
    (directory / name).write_text(text, encoding="latin-1")
  features = (features_from_dicts(movielens.FEATURE_PRESETS["movielens-users"])
              + features_from_dicts(movielens.FEATURE_PRESETS["movielens-genres"]))
  source = SourceConfig(format="movielens", path=str(directory))
  out = tmp_path / "out"
  report = run_ingest(EtaConfig(source=source, ingest=IngestConfig(**TINY), features=features),
                      str(out), min_split_examples=0)
  assert (report["rows_read"], report["rows_valid"]) == (8, 7) and _reconciles(report)
  (dead,) = _dead_letters(out)
  assert (dead["reason"], dead["detail"], dead["row"]) == (
      events.INVALID_FIELD, "age 'forty' is not a whole number of years 1-120 (u.user line 3)",
      "4\t10\t5\t881251049")
  assert not report.get("ignored_columns")
  missing = {name: v["rows"] for name, v in report["side_features"]["missing_values"].items()}
  assert missing == {"age": 2, "gender": 2, "occupation": 2, "zip_prefix": 2, "genres": 2}

  examples = {(ex["user_id"][0], ex["item_id"][0]): ex for split in events.SPLITS
              for ex in example_io.read_examples(str(out), split)}
  assert len(examples) == 7
  columns = ("age", "gender", "occupation", "zip_prefix", "genres")
  values = {key: tuple(ex[c] for c in columns) for key, ex in examples.items()}
  assert values[("1", "10")] == (["18"], ["M"], ["technician"], ["8"], ["Comedy"])
  assert values[("1", "20")][:4] == values[("1", "10")][:4]  # one profile per user
  assert values[("1", "20")][4] == ["Action", "Drama"]
  assert values[("2", "20")] == (["50"], ["F"], ["other"], ["T"], ["Action", "Drama"])
  assert values[("3", "10")] == ([""], [""], [""], [""], ["Comedy"])  # no u.user row
  assert values[("1", "30")][4] == [] and values[("3", "30")][4] == []  # no genre

  # Undeclared, the same directory gives the plain examples, and every column is
  # reported once as ignored; user 4's unusable age then rejects nothing.
  plain = run_ingest(EtaConfig(source=source, ingest=IngestConfig(**TINY)),
                     str(tmp_path / "plain"), min_split_examples=0)
  assert (plain["rows_read"], plain["rows_valid"]) == (8, 8)
  assert plain["ignored_columns"] == {column: 1 for column in columns}
  assert "side_features" not in plain
