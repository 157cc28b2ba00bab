"""The configuration object: JSON round trip and validation."""

import pytest

from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig


def test_json_round_trip():
  config = EtaConfig(source=SourceConfig(format="csv", path="/data/log.csv"),
                     ingest=IngestConfig(max_history=256, split="global_time",
                                         eval_cutoff=1_700_000_000, negatives_per_positive=2))
  assert EtaConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("kwargs", [dict(max_history=0), dict(split="random"),
                                    dict(split="global_time"), dict(eval_fraction=1.0),
                                    dict(valid_fraction=1.0), dict(valid_fraction=-0.1),
                                    dict(negatives_per_positive=-1)])
def test_invalid_ingest_settings_are_refused(kwargs):
  with pytest.raises(ValueError):
    IngestConfig(**kwargs)


def test_unknown_format_and_section_are_refused():
  with pytest.raises(ValueError, match="unknown format"):
    SourceConfig(format="xml")
  with pytest.raises(ValueError, match="unknown config sections"):
    EtaConfig.from_dict({"evaluator": {}})


def test_cache_relevant_sections():
  from eta_ctr.config import ModelConfig
  config = EtaConfig(model=ModelConfig(name="din", top_k=8, long_seq_len=64, short_seq_len=8))
  assert config.ingest_only() == EtaConfig(source=config.source, ingest=config.ingest)
  other_model = ModelConfig(name="eta", top_k=32, hash_bits=128, long_seq_len=64,
                            short_seq_len=8)
  assert config.model.transform_settings() == other_model.transform_settings()
  rebuilt = ModelConfig.from_transform_settings(other_model.transform_settings())
  assert rebuilt.transform_settings() == other_model.transform_settings()


def test_default_k_and_s_are_clamped_to_l_but_explicit_ones_are_kept():
  from eta_ctr.config import ModelConfig
  model = ModelConfig(top_k=48, short_seq_len=16)
  short = model.replace_clamped(long_seq_len=8)
  assert (short.long_seq_len, short.top_k, short.short_seq_len) == (8, 8, 8)
  assert model.replace_clamped(long_seq_len=64) == ModelConfig(long_seq_len=64)
  assert model.replace_clamped(long_seq_len=8, top_k=4).top_k == 4
  with pytest.raises(ValueError, match="top_k"):
    model.replace_clamped(long_seq_len=8, top_k=16)  # explicit and invalid: an error


def test_evaluation_section_round_trips_and_validates():
  from eta_ctr.config import EvaluationConfig
  config = EtaConfig(evaluation=EvaluationConfig(auc_floor=0.55, max_auc_regression=0.02))
  assert EtaConfig.from_json(config.to_json()).evaluation == config.evaluation
  assert EtaConfig().evaluation == EvaluationConfig(auc_floor=0.6, max_auc_regression=0.01)
  with pytest.raises(ValueError):
    EvaluationConfig(auc_floor=1.5)
  with pytest.raises(ValueError):
    EvaluationConfig(max_auc_regression=-0.1)
  with pytest.raises(ValueError):
    EvaluationConfig(max_logloss_over_base_rate=-0.01)
  with pytest.raises(ValueError):
    EvaluationConfig(max_calibration_error=1.0)
  blessing = EvaluationConfig(max_logloss_over_base_rate=0.01, max_calibration_error=0.1)
  assert EtaConfig.from_json(EtaConfig(evaluation=blessing).to_json()).evaluation == blessing


def test_the_valid_split_exists_only_with_a_valid_fraction():
  assert IngestConfig().split_names == ("train", "valid", "eval")
  assert IngestConfig(valid_fraction=0).split_names == ("train", "eval")


@pytest.mark.parametrize("kwargs", [dict(train_steps=0), dict(validate_every_steps=0),
                                    dict(patience=0), dict(validation_steps=0)])
def test_invalid_trainer_settings_are_refused(kwargs):
  from eta_ctr.config import TrainerConfig
  with pytest.raises(ValueError):
    TrainerConfig(**kwargs)


def test_selection_flags_build_the_config():
  from eta_ctr import cli, flags
  args = cli.build_parser().parse_args([
      "run", "--valid-fraction", "0.2", "--train-steps", "900", "--validate-every-steps",
      "150", "--patience", "4", "--max-logloss-over-base-rate", "0.005",
      "--max-calibration-error", "0.1"])
  config = flags.config_from_args(args, SourceConfig(format="csv", path="x.csv"))
  assert config.ingest.valid_fraction == 0.2
  assert (config.trainer.train_steps, config.trainer.validate_every_steps,
          config.trainer.patience) == (900, 150, 4)
  assert (config.evaluation.max_logloss_over_base_rate,
          config.evaluation.max_calibration_error) == (0.005, 0.1)


def test_for_source_applies_the_format_model_defaults():
  from components import formats
  movielens = EtaConfig.for_source(SourceConfig(format="movielens", path="/d"))
  assert movielens.source.path == "/d"
  for name, value in formats.get("movielens").model_defaults.items():
    assert getattr(movielens.model, name) == value
  assert EtaConfig.for_movielens().model == movielens.model
  assert EtaConfig.for_source(SourceConfig(format="csv", path="x.csv")).model == (
      EtaConfig().model)


def _csv_source():
  return SourceConfig(format="csv", path="log.csv")


def test_features_round_trip_and_are_absent_from_the_json_without_any():
  from eta_ctr.config import FeatureSpec
  features = (FeatureSpec("age", "user", "categorical", vocab_size=100),
              FeatureSpec("price", "item", "numeric", in_history=True, default="0.5"),
              FeatureSpec("genres", "item", "categorical_list", separator=";", max_values=4))
  config = EtaConfig(source=_csv_source(), features=features)
  assert EtaConfig.from_json(config.to_json()) == config
  assert config.ingest_only().features == features
  assert EtaConfig(source=_csv_source(), features=[
      {"name": "age", "entity": "user", "kind": "categorical", "vocab_size": 100}]
                   ).features[0] == features[0]  # dicts are converted
  assert "features" not in EtaConfig().to_dict() and "features" not in EtaConfig().to_json()
  assert EtaConfig.from_json(EtaConfig().to_json()) == EtaConfig()


def test_features_are_refused_with_the_reason():
  from eta_ctr.config import FeatureSpec
  with pytest.raises(ValueError, match="taobao format has no side-feature columns; declare "
                     "features for csv, jsonl, parquet, movielens logs"):
    EtaConfig(source=SourceConfig(format="taobao", path="/d"),
              features=(FeatureSpec("age", "user", "categorical"),))
  with pytest.raises(ValueError, match="'label' is a built-in column"):
    FeatureSpec("label", "context", "categorical")
  with pytest.raises(ValueError, match="unknown kind"):
    FeatureSpec("age", "user", "text")
  with pytest.raises(ValueError, match="declared twice"):
    EtaConfig(source=_csv_source(), features=(FeatureSpec("age", "user", "categorical"),
                                              FeatureSpec("age", "user", "numeric")))
  with pytest.raises(ValueError, match="unknown options"):
    EtaConfig.from_dict({"features": [{"name": "a", "entity": "user", "kind": "numeric",
                                       "bucketize": 3}]})


def test_feature_flags_and_features_file(tmp_path):
  from eta_ctr import cli, flags
  from eta_ctr.config import FeatureSpec
  (tmp_path / "features.yaml").write_text(
      "features:\n"
      "  - {name: brand, entity: item, kind: categorical, in_history: true}\n"
      "  - {name: genres, entity: item, kind: categorical_list, separator: ';'}\n")
  (tmp_path / "features.json").write_text(
      '[{"name": "hour", "entity": "context", "kind": "categorical"}]')
  for command in (["ingest", "--output", "o"], ["compare", "--output", "o"], ["run"]):
    args = cli.build_parser().parse_args(command + [
        "--features-file", str(tmp_path / "features.yaml"),
        "--feature", "age:user:categorical:vocab_size=50",
        "--feature", "price:item:numeric:in_history=true:default=0"])
    assert [f.name for f in flags.features_from_args(args)] == ["brand", "genres", "age",
                                                                "price"]
  config = flags.config_from_args(args, _csv_source())  # run's
  assert config.features[2] == FeatureSpec("age", "user", "categorical", vocab_size=50)
  assert config.features[3] == FeatureSpec("price", "item", "numeric", in_history=True,
                                           default="0")
  assert config.features[1].separator == ";"
  args = cli.build_parser().parse_args(["run", "--features-file",
                                        str(tmp_path / "features.json")])
  assert flags.features_from_args(args) == (FeatureSpec("hour", "context", "categorical"),)
  plain = cli.build_parser().parse_args(["run"])
  assert flags.config_from_args(plain, _csv_source()).features == ()


def test_feature_presets_come_first_and_reach_a_movielens_config(tmp_path, capsys):
  from components import movielens
  from eta_ctr import cli, flags
  from eta_ctr.config import FeatureSpec, features_from_dicts
  args = cli.build_parser().parse_args([
      "compare", "--output", "o", "--feature", "genres:item:categorical_list",
      "--feature-preset", "movielens-users"])
  config = flags.config_from_args(args, SourceConfig(format="movielens", path="/d"))
  assert config.features == features_from_dicts(
      movielens.FEATURE_PRESETS["movielens-users"]) + (
          FeatureSpec("genres", "item", "categorical_list"),)
  assert EtaConfig.from_json(config.to_json()) == config
  args = cli.build_parser().parse_args(["run", "--feature-preset", "movielens-genres",
                                        "--feature-preset", "movielens-users"])
  assert [f.name for f in flags.features_from_args(args)] == [
      "genres", "age", "gender", "occupation", "zip_prefix"]
  with pytest.raises(SystemExit):
    cli.build_parser().parse_args(["run", "--feature-preset", "movielens-everything"])
  assert "invalid choice: 'movielens-everything'" in capsys.readouterr().err


@pytest.mark.parametrize("flag,message", [
    ("age:user", "expected NAME:ENTITY:KIND"),
    ("age:user:categorical:colour=red", "is not OPTION=VALUE"),
    ("age:user:categorical:vocab_size=many", "is not an integer"),
    ("price:item:numeric:in_history=maybe", "is not true or false"),
    ("age:person:categorical", "unknown entity"),
    ("user_id:user:categorical", "built-in column"),
])
def test_malformed_feature_flags_are_usage_errors(flag, message, capsys):
  from eta_ctr import cli
  with pytest.raises(SystemExit):
    cli.build_parser().parse_args(["run", "--feature", flag])
  assert message in capsys.readouterr().err


def test_a_feature_clash_or_a_bad_file_stops_the_cli_with_the_reason(tmp_path):
  from eta_ctr import cli, flags
  (tmp_path / "bad.json").write_text('[{"name": "age", "entity": "user"}]')
  args = cli.build_parser().parse_args(["run", "--features-file", str(tmp_path / "bad.json")])
  with pytest.raises(SystemExit, match="lacks \\['kind'\\]"):
    flags.config_from_args(args, _csv_source())
  args = cli.build_parser().parse_args(["run", "--feature", "age:user:categorical",
                                        "--feature", "age:item:numeric"])
  with pytest.raises(SystemExit, match="declared twice"):
    flags.config_from_args(args, _csv_source())
  args = cli.build_parser().parse_args(["run", "--feature", "age:user:categorical"])
  with pytest.raises(SystemExit, match="taobao format has no side-feature columns"):
    flags.config_from_args(args, SourceConfig(format="taobao", path="/d"))
