"""Finding the default data sets: MovieLens-100k on disk, or downloaded with a checksum.

MovieLens' licence forbids redistribution, so the project never ships it; it is
looked up in this order: an explicit path, $ETA_DATA_DIR, ../shared/datasets
beside the checkout, then a download from GroupLens into a cache directory.
"""

import hashlib
import io
import logging
import os
import urllib.request
import zipfile
from typing import Dict, Optional

log = logging.getLogger(__name__)

MOVIELENS_100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# SHA-256 of the files the ingest reads, as GroupLens publishes them.
MOVIELENS_100K_SHA256: Dict[str, str] = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
}
ENV_DATA_DIR = "ETA_DATA_DIR"
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DatasetNotFound(FileNotFoundError):
  pass


def _has_movielens(directory: Optional[str]) -> bool:
  return bool(directory) and all(
      os.path.isfile(os.path.join(directory, name)) for name in MOVIELENS_100K_SHA256)


def _candidates(data_path: Optional[str]):
  if data_path:  # an explicit path is the only place looked at
    yield "--data-path", data_path
    yield "--data-path", os.path.join(data_path, "ml-100k")
    return
  env = os.environ.get(ENV_DATA_DIR)
  if env:
    yield f"${ENV_DATA_DIR}", env
    yield f"${ENV_DATA_DIR}", os.path.join(env, "ml-100k")
  yield "../shared/datasets", os.path.join(_REPO_ROOT, "..", "shared", "datasets", "ml-100k")


def sha256_of(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as handle:
    for block in iter(lambda: handle.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def locate_movielens_100k(data_path: Optional[str] = None, download: bool = True,
                          cache_dir: Optional[str] = None) -> str:
  """The ml-100k directory holding u.data and u.item; downloads it if allowed."""
  tried = []
  for origin, directory in _candidates(data_path):
    if _has_movielens(directory):
      log.info("MovieLens-100k found via %s: %s", origin, os.path.abspath(directory))
      return os.path.abspath(directory)
    tried.append(f"{origin}: {directory}")
  if data_path:  # an explicit path that is wrong is an error, not a reason to download
    raise DatasetNotFound(f"no MovieLens-100k (u.data, u.item) under --data-path {data_path}")
  cache_dir = cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "eta-ctr")
  target = os.path.join(cache_dir, "ml-100k")
  if _has_movielens(target):
    _verify(target)
    return target
  if not download:
    raise DatasetNotFound("MovieLens-100k not found; tried " + "; ".join(tried))
  try:
    return download_movielens_100k(cache_dir)
  except Exception as error:  # no network, bad checksum, ...
    raise DatasetNotFound(
        "MovieLens-100k not found (tried " + "; ".join(tried) + f") and the download from "
        f"{MOVIELENS_100K_URL} failed: {error}. Pass --data-path DIR or set "
        f"${ENV_DATA_DIR}.") from error


def download_movielens_100k(cache_dir: str, url: str = MOVIELENS_100K_URL) -> str:
  """Downloads and unpacks ml-100k into cache_dir, then checks the checksums."""
  log.info("downloading MovieLens-100k from %s", url)
  with urllib.request.urlopen(url, timeout=60) as response:
    payload = response.read()
  os.makedirs(cache_dir, exist_ok=True)
  with zipfile.ZipFile(io.BytesIO(payload)) as archive:
    archive.extractall(cache_dir)
  target = os.path.join(cache_dir, "ml-100k")
  _verify(target)
  return target


def _verify(directory: str):
  for name, expected in MOVIELENS_100K_SHA256.items():
    actual = sha256_of(os.path.join(directory, name))
    if actual != expected:
      raise ValueError(f"checksum mismatch for {name}: {actual} != {expected}")
