"""Finding MovieLens-100k: lookup order, and a download verified by checksum."""

import os
import zipfile

import pytest

from components import datasets


def _fake_movielens(directory, data=b"1\t2\t3\t4\n", item=b"2|x|||u|0\n"):
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "u.data"), "wb") as handle:
    handle.write(data)
  with open(os.path.join(directory, "u.item"), "wb") as handle:
    handle.write(item)


def test_env_var_is_used_when_no_path_is_given(tmp_path, monkeypatch):
  _fake_movielens(tmp_path / "ml-100k")
  monkeypatch.setenv(datasets.ENV_DATA_DIR, str(tmp_path))
  assert datasets.locate_movielens_100k() == str(tmp_path / "ml-100k")


def test_download_is_checked_against_checksums(tmp_path):
  archive = tmp_path / "ml-100k.zip"
  _fake_movielens(tmp_path / "src" / "ml-100k")
  with zipfile.ZipFile(archive, "w") as handle:
    for name in ("u.data", "u.item"):
      handle.write(tmp_path / "src" / "ml-100k" / name, f"ml-100k/{name}")
  with pytest.raises(ValueError, match="checksum mismatch for u.data"):
    datasets.download_movielens_100k(str(tmp_path / "cache"), url=archive.as_uri())


def test_real_files_pass_the_checksum(tmp_path):
  try:
    real = datasets.locate_movielens_100k(download=False)
  except datasets.DatasetNotFound:
    pytest.skip("MovieLens-100k not available")
  archive = tmp_path / "ml-100k.zip"
  with zipfile.ZipFile(archive, "w") as handle:
    for name in ("u.data", "u.item"):
      handle.write(os.path.join(real, name), f"ml-100k/{name}")
  target = datasets.download_movielens_100k(str(tmp_path / "cache"), url=archive.as_uri())
  assert sorted(os.listdir(target)) == ["u.data", "u.item"]
