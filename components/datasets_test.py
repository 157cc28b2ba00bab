"""Finding the named data sets: lookup order, and downloads verified by checksum."""

import dataclasses
import os
import zipfile

import pytest

from components import datasets


def _fake_movielens(directory, data=b"1\t2\t3\t4\n", item=b"2|x|||u|0\n",
                    user=b"1|24|M|technician|85711\n"):
  os.makedirs(directory, exist_ok=True)
  for name, content in (("u.data", data), ("u.item", item), ("u.user", user)):
    with open(os.path.join(directory, name), "wb") as handle:
      handle.write(content)


def _fake_latest_small(directory):
  os.makedirs(directory, exist_ok=True)
  (directory / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
  (directory / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Comedy\n")


def _zip(archive, source_dir, top, names):
  with zipfile.ZipFile(archive, "w") as handle:
    for name in names:
      handle.write(os.path.join(source_dir, name), f"{top}/{name}")
  return archive.as_uri()


def test_the_table_names_each_set_once():
  assert datasets.NAMES == ("movielens-100k", "movielens-latest-small")
  assert datasets.get("movielens-latest-small").directory == "ml-latest-small"
  with pytest.raises(KeyError, match="movielens-100k"):
    datasets.get("movielens-1b")


def test_env_var_is_used_when_no_path_is_given(tmp_path, monkeypatch):
  _fake_movielens(tmp_path / "ml-100k")
  _fake_latest_small(tmp_path / "ml-latest-small")
  monkeypatch.setenv(datasets.ENV_DATA_DIR, str(tmp_path))
  assert datasets.locate_movielens_100k() == str(tmp_path / "ml-100k")
  assert datasets.locate("movielens-latest-small") == str(tmp_path / "ml-latest-small")


def test_an_explicit_path_is_the_only_place_looked_at(tmp_path, monkeypatch):
  _fake_latest_small(tmp_path / "env" / "ml-latest-small")
  monkeypatch.setenv(datasets.ENV_DATA_DIR, str(tmp_path / "env"))
  _fake_latest_small(tmp_path / "mine" / "ml-latest-small")
  assert datasets.locate("movielens-latest-small", str(tmp_path / "mine")) == str(
      tmp_path / "mine" / "ml-latest-small")
  with pytest.raises(datasets.DatasetNotFound,
                     match="no movielens-latest-small \\(ratings.csv \\+ movies.csv\\) under "
                           "--data-path"):
    datasets.locate("movielens-latest-small", str(tmp_path / "elsewhere"))


def test_download_is_checked_against_checksums(tmp_path):
  _fake_movielens(tmp_path / "src" / "ml-100k")
  url = _zip(tmp_path / "ml-100k.zip", tmp_path / "src" / "ml-100k", "ml-100k",
             ("u.data", "u.item"))
  dataset = datasets.get("movielens-100k")
  with pytest.raises(ValueError, match="checksum mismatch for u.data"):
    datasets.download_dataset(dataset, str(tmp_path / "cache"), url=url)
  assert os.listdir(tmp_path / "cache") == []  # nothing unverified is left behind


def test_a_newer_latest_release_fails_with_a_clear_message(tmp_path):
  _fake_latest_small(tmp_path / "src")
  url = _zip(tmp_path / "ml-latest-small.zip", tmp_path / "src", "ml-latest-small",
             ("ratings.csv", "movies.csv"))
  dataset = datasets.get("movielens-latest-small")
  with pytest.raises(ValueError) as error:
    datasets.download_dataset(dataset, str(tmp_path / "cache"), url=url)
  assert "checksum mismatch for ratings.csv" in str(error.value)
  assert "newer release" in str(error.value)
  assert "2018-09-26" in str(error.value)
  assert os.listdir(tmp_path / "cache") == []


def test_locate_downloads_when_nothing_is_on_disk_and_says_why_it_failed(tmp_path,
                                                                          monkeypatch):
  _fake_latest_small(tmp_path / "src")
  url = _zip(tmp_path / "ml-latest-small.zip", tmp_path / "src", "ml-latest-small",
             ("ratings.csv", "movies.csv"))
  monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
  monkeypatch.setattr(datasets, "_REPO_ROOT", str(tmp_path / "checkout"))
  monkeypatch.setitem(datasets._BY_NAME, "movielens-latest-small", dataclasses.replace(
      datasets.get("movielens-latest-small"), url=url))
  with pytest.raises(datasets.DatasetNotFound) as error:
    datasets.locate("movielens-latest-small", cache_dir=str(tmp_path / "cache"))
  for part in ("tried ../shared/datasets", "checksum mismatch for ratings.csv", url,
               "--data-path DIR"):
    assert part in str(error.value)
  with pytest.raises(datasets.DatasetNotFound, match="not found; tried"):
    datasets.locate("movielens-latest-small", cache_dir=str(tmp_path / "cache"),
                    download=False)


def test_a_verified_download_lands_in_the_cache(tmp_path):
  _fake_latest_small(tmp_path / "src")
  url = _zip(tmp_path / "ml-latest-small.zip", tmp_path / "src", "ml-latest-small",
             ("ratings.csv", "movies.csv"))
  dataset = dataclasses.replace(
      datasets.get("movielens-latest-small"), url=url,
      sha256={name: datasets.sha256_of(str(tmp_path / "src" / name))
              for name in ("ratings.csv", "movies.csv")})
  target = datasets.download_dataset(dataset, str(tmp_path / "cache"))
  assert target == str(tmp_path / "cache" / "ml-latest-small")
  assert sorted(os.listdir(tmp_path / "cache")) == ["ml-latest-small"]
  assert sorted(os.listdir(target)) == ["movies.csv", "ratings.csv"]


@pytest.mark.parametrize("name", datasets.NAMES)
def test_real_files_pass_the_checksum(tmp_path, name):
  try:
    real = datasets.locate(name, download=False, cache_dir=str(tmp_path / "no-cache"))
  except datasets.DatasetNotFound:
    pytest.skip(f"{name} not available")
  dataset = datasets.get(name)
  url = _zip(tmp_path / "set.zip", real, dataset.directory, tuple(dataset.sha256))
  target = datasets.download_dataset(dataset, str(tmp_path / "cache"), url=url)
  assert sorted(os.listdir(target)) == sorted(dataset.sha256)


def test_a_copy_without_the_optional_users_file_is_found(tmp_path):
  """ml-100k's u.user is read only for declared user features: a copy of
  u.data + u.item alone is still the data set (the reader names u.user when a
  user column is declared and the file is missing)."""
  _fake_movielens(tmp_path / "ml-100k")
  os.remove(tmp_path / "ml-100k" / "u.user")
  assert datasets.get("movielens-100k").required_files == ("u.data", "u.item")
  assert datasets.locate("movielens-100k", data_path=str(tmp_path / "ml-100k")) == str(
      tmp_path / "ml-100k")
