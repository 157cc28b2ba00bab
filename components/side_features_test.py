"""Side features: names, the value rule, examples and the Transform contract (no Beam)."""

import pytest
from tensorflow.core.example import example_pb2

from components import events, histories, parsing, side_features
from components.events import Event, RowError
from components.text_records import RawRecord
from eta_ctr.config import FeatureSpec, IngestConfig

AGE = FeatureSpec("age", "user", "categorical")
PRICE = FeatureSpec("price", "item", "numeric", in_history=True)
DEVICE = FeatureSpec("device", "context", "categorical", default="web")
GENRES = FeatureSpec("genres", "item", "categorical_list", max_values=3)
FEATURES = (AGE, PRICE, DEVICE, GENRES)


def _reason_and_detail(spec, value):
  with pytest.raises(RowError) as error:
    side_features.parse_value(spec, value)
  return error.value.reason, error.value.detail


def test_values_of_each_kind_and_their_missing_defaults():
  assert side_features.parse_value(AGE, " 25-34 ") == "25-34"
  assert side_features.parse_value(AGE, 30) == "30"
  assert side_features.parse_value(AGE, 30.0) == "30"
  assert side_features.parse_value(AGE, True) == "true"
  assert side_features.parse_value(PRICE, "9.5") == (9.5, 0)
  assert side_features.parse_value(PRICE, 3) == (3.0, 0)
  assert side_features.parse_value(GENRES, "Comedy| Drama||") == ("Comedy", "Drama")
  assert side_features.parse_value(GENRES, ["Comedy", None, 7]) == ("Comedy", "7")
  for missing in (None, "", "  ", float("nan")):
    assert side_features.parse_value(AGE, missing) == ""
    assert side_features.parse_value(PRICE, missing) == (0.0, 1)
    assert side_features.parse_value(GENRES, missing) == ()
  # A declared default fills the example, never the stored value (so missing counts).
  assert side_features.example_value(DEVICE, "") == b"web"
  assert side_features.example_value(AGE, "") == b""
  with_default = FeatureSpec("stock", "item", "numeric", default="1.5")
  assert side_features.parse_value(with_default, "") == (1.5, 1)


@pytest.mark.parametrize("spec,value,detail", [
    (PRICE, "abc", "price 'abc' is not a number"),
    (PRICE, "nan", "is not a finite number"),
    (PRICE, "1e39", "beyond float32"),
    (PRICE, True, "is a boolean"),
    (PRICE, [1.0], "has type list"),
    (AGE, "a\x07b", "age value contains control characters"),
    (AGE, "x" * 513, "longer than 512"),
    (AGE, ["a", "b"], "not one value"),
])
def test_bad_values_are_invalid_fields_naming_the_feature(spec, value, detail):
  reason, message = _reason_and_detail(spec, value)
  assert reason == events.INVALID_FIELD
  assert detail in message and spec.name in message


def test_csv_rows_carry_the_features_and_report_extra_columns():
  header = ["user_id", "item_id", "timestamp", "label", "age", "price", "note", "device",
            "genres"]
  parser = parsing.CsvRowParser({"log.csv": header}, FEATURES)
  event = parser(RawRecord("log.csv", 2, text="u1,i1,100,1,18-24,,hello,app,A|B"))
  assert event.side == ("18-24", (0.0, 1), "app", ("A", "B"))
  assert event.ignored == ("note",)
  with pytest.raises(RowError, match="price 'cheap' is not a number"):
    parser(RawRecord("log.csv", 3, text="u1,i1,100,1,18-24,cheap,hello,app,A"))
  # Without features the event is what it always was (extra columns only noted).
  plain = parsing.CsvRowParser({"log.csv": header})(
      RawRecord("log.csv", 2, text="u1,i1,100,1,18-24,,hello,app,A|B"))
  assert plain.side == () and plain.ignored == ("age", "device", "genres", "note", "price")


def test_a_declared_column_missing_from_a_file_names_the_column_and_the_file():
  with pytest.raises(ValueError, match=r"b\.csv: the declared feature column 'price' is not"):
    parsing.CsvRowParser({"a.csv": ["user_id", "item_id", "timestamp", "label", "price"],
                          "b.csv": ["user_id", "item_id", "timestamp", "label"]}, (PRICE,))


def test_json_absent_keys_are_missing_values():
  parser = parsing.JsonLinesRowParser(FEATURES)
  event = parser(RawRecord("log.jsonl", 1, text='{"user_id": "u", "item_id": 3, '
                           '"timestamp": 100, "label": 0, "price": 2.5, "extra": 1, '
                           '"genres": ["A"]}'))
  assert event.side == ("", (2.5, 0), "", ("A",)) and event.ignored == ("extra",)


def _examples(user_events, features, max_history=8):
  config = IngestConfig(max_history=max_history, eval_fraction=0.5, valid_fraction=0.0)
  out = [payload for kind, payload in histories.build_user_examples(
      "u", user_events, config, features=features)]
  examples = [example_pb2.Example.FromString(p[1]).features.feature for p in out
              if isinstance(p, tuple)]
  return examples, out[-1]


def test_examples_carry_the_features_and_the_history_the_behaviours_own_values():
  def event(item, t, price, age="30", device="app", genres=("A",)):
    return Event("u", item, "c", t, 1, side=(age, price, device, genres))
  user_events = [event("i1", 100, (5.0, 0)), event("i2", 200, (0.0, 1), device=""),
                 event("i1", 300, (7.0, 0), genres=())]  # i1 repriced: point in time
  examples, stats = _examples(user_events, FEATURES)
  last = examples[-1]
  assert last["age"].bytes_list.value == [b"30"]
  assert list(last["price"].float_list.value) == [7.0]
  assert list(last["price_missing"].int64_list.value) == [0]
  assert last["device"].bytes_list.value == [b"app"]
  assert list(last["genres"].bytes_list.value) == []
  assert list(last["hist_item_ids"].bytes_list.value) == [b"i2", b"i1"]
  assert list(last["hist_price"].float_list.value) == [0.0, 5.0]  # each behaviour's own
  assert list(last["hist_price_missing"].int64_list.value) == [1, 0]
  assert examples[1]["device"].bytes_list.value == [b"web"]  # the declared default
  side = stats[histories.SIDE_FEATURES]
  assert side[histories.MISSING_VALUES] == {"age": 0, "price": 1, "device": 1, "genres": 1}
  assert side[histories.EXAMPLE_BYTES] > side[histories.EXAMPLE_BYTES_WITHOUT_HISTORY] > 0


def test_without_features_examples_are_byte_identical_to_make_example():
  user_events = [Event("u", f"i{k}", "c", 100 * k, 1) for k in range(1, 4)]
  examples, stats = _examples(user_events, ())
  config = IngestConfig(max_history=8, eval_fraction=0.5, valid_fraction=0.0)
  serialized = [p[1] for k, p in histories.build_user_examples("u", user_events, config)
                if k == histories.EXAMPLE]
  assert serialized[-1] == histories.make_example(
      b"u", b"i3", b"c", 300, 1, [b"i2", b"i1"], [b"c", b"c"], [200, 100])
  assert histories.SIDE_FEATURES not in stats


@pytest.mark.parametrize("name", ["user_id", "hist_brand", "long_x", "short_x", "item",
                                  "price_missing", "1abc", "a-b", "category_vocab"])
def test_names_that_clash_or_are_malformed_are_refused(name):
  with pytest.raises(ValueError, match=repr(name)):
    FeatureSpec(name, "user", "categorical")


def test_built_in_transformed_names_cover_the_models_features():
  from models import features  # the model contract's own names
  names = {value for key, value in vars(features).items()
           if key.isupper() and isinstance(value, str)}
  assert names <= side_features.BUILT_IN_TRANSFORMED | side_features.BUILT_IN_RAW


def test_the_transformed_feature_contract():
  contract = {t.name: t for t in side_features.transformed_features(FEATURES, 16, 4)}
  assert set(contract) == {"age_idx", "price_z", "price_missing", "long_price_z",
                           "short_price_z", "long_price_missing", "short_price_missing",
                           "device_idx", "genres_idx"}
  assert contract["age_idx"].dtype == "int64" and contract["age_idx"].shape == ("B",)
  assert contract["age_idx"].vocabulary == "age_vocab"
  assert contract["genres_idx"].shape == ("B", 3)
  assert contract["long_price_z"].shape == ("B", 16) and contract["short_price_z"].role == "short"
  assert contract["price_z"].vocabulary is None

  class FakeOutput:
    def vocabulary_size_by_name(self, name):
      return {"age_vocab": 5, "device_vocab": 2, "genres_vocab": 10}[name]
  assert side_features.vocabulary_sizes(FakeOutput(), FEATURES) == {
      "age": 7, "device": 4, "genres": 12}  # + 1 OOV bucket + padding
  assert side_features.all_raw_features(FEATURES) == {
      "age": ("bytes", "scalar"), "price": ("float", "scalar"),
      "price_missing": ("int64", "scalar"), "hist_price": ("float", "history"),
      "hist_price_missing": ("int64", "history"), "device": ("bytes", "scalar"),
      "genres": ("bytes", "list")}
