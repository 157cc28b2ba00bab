"""Finding the named data sets of `--data`: on disk, or downloaded and checksummed.

MovieLens' licence forbids redistribution, so the project never ships a data
set. `locate(name)` looks for the set's directory (`NamedDataset.directory`) in
this order:
  1. an explicit --data-path DIR: DIR itself, then DIR/<directory>; nothing else;
  2. $ETA_DATA_DIR: the variable's directory itself, then $ETA_DATA_DIR/<directory>;
  3. ../shared/datasets/<directory> beside the checkout;
  4. the download cache (~/.cache/eta-ctr/<directory>), else a download from
     GroupLens, unpacked into the cache only once the SHA-256 of every file the
     ingest reads matches the pinned value.
A copy found in 1-3 is used as it is (any release); only the cache and a
download are checked.
"""

import dataclasses
import hashlib
import io
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from typing import Dict, Optional, Tuple

log = logging.getLogger(__name__)

ENV_DATA_DIR = "ETA_DATA_DIR"
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GROUPLENS = "https://files.grouplens.org/datasets/movielens"


class DatasetNotFound(FileNotFoundError):
  pass


@dataclasses.dataclass(frozen=True)
class NamedDataset:
  """One data set that `--data NAME` finds on its own.

  Attributes:
    name: the --data value.
    directory: its folder's name, as the archive unpacks it.
    url: the zip archive holding `directory/`.
    sha256: file name -> SHA-256 (hex) of each file the ingest reads.
    release: which release the checksums pin, for messages.
    format: its components.formats format.
    changes_in_place: the publisher replaces the archive with newer releases
      under the same URL (GroupLens' "latest"), so a download may fail the check.
    optional_files: files of `sha256` that a copy on disk may lack (read only
      for a declared side feature, which then names the file it needs).
  """
  name: str
  directory: str
  url: str
  sha256: Dict[str, str]
  release: str
  format: str = "movielens"
  changes_in_place: bool = False
  optional_files: Tuple[str, ...] = ()

  @property
  def required_files(self) -> Tuple[str, ...]:
    return tuple(name for name in self.sha256 if name not in self.optional_files)


DATASETS: Tuple[NamedDataset, ...] = (
    NamedDataset(
        name="movielens-100k", directory="ml-100k", url=f"{_GROUPLENS}/ml-100k.zip",
        sha256={
            "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
            "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
            # read when a user column is declared (components/movielens.py)
            "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        },
        release="MovieLens 100K (1998; 100,000 ratings, 943 users)",
        optional_files=("u.user",)),
    NamedDataset(
        name="movielens-latest-small", directory="ml-latest-small",
        url=f"{_GROUPLENS}/ml-latest-small.zip",
        sha256={
            "ratings.csv": "80da8b3393dae325bbba5a31f291a6ba55d8d4f4396de3c456f2c1635b1b70e8",
            "movies.csv": "c47b783f23eb304413307e1bb05335e427737da20ec8d3c0e96335567dd5f3dc",
        },
        release="ml-latest-small generated 2018-09-26 (100,836 ratings, 610 users)",
        changes_in_place=True),
)
NAMES: Tuple[str, ...] = tuple(dataset.name for dataset in DATASETS)
_BY_NAME = {dataset.name: dataset for dataset in DATASETS}


def get(name: str) -> NamedDataset:
  """The data set called `name`; raises KeyError naming the known ones."""
  if name not in _BY_NAME:
    raise KeyError(f"unknown data set {name!r}; expected one of {NAMES}")
  return _BY_NAME[name]


def default_cache_dir() -> str:
  return os.path.join(os.path.expanduser("~"), ".cache", "eta-ctr")


def _complete(dataset: NamedDataset, directory: Optional[str]) -> bool:
  return bool(directory) and all(
      os.path.isfile(os.path.join(directory, name)) for name in dataset.required_files)


def _candidates(dataset: NamedDataset, data_path: Optional[str]):
  if data_path:  # an explicit path is the only place looked at
    yield "--data-path", data_path
    yield "--data-path", os.path.join(data_path, dataset.directory)
    return
  env = os.environ.get(ENV_DATA_DIR)
  if env:
    yield f"${ENV_DATA_DIR}", env
    yield f"${ENV_DATA_DIR}", os.path.join(env, dataset.directory)
  yield "../shared/datasets", os.path.join(_REPO_ROOT, "..", "shared", "datasets",
                                           dataset.directory)


def sha256_of(path: str) -> str:
  """The SHA-256 (hex) of the file at `path`."""
  digest = hashlib.sha256()
  with open(path, "rb") as handle:
    for block in iter(lambda: handle.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def locate(name: str, data_path: Optional[str] = None, download: bool = True,
           cache_dir: Optional[str] = None) -> str:
  """The absolute directory of data set `name` (see the module docstring).

  Args:
    name: one of NAMES.
    data_path: --data-path; when given, the only place looked at.
    download: whether a missing set may be downloaded.
    cache_dir: the download cache (default ~/.cache/eta-ctr).

  Raises:
    KeyError: an unknown name.
    DatasetNotFound: not at data_path; or not found, and the download is not
      allowed or fails (no network, a checksum mismatch: the message says which
      file and, for a release that changes in place, what to do).
  """
  dataset = get(name)
  files = " + ".join(dataset.required_files)
  tried = []
  for origin, directory in _candidates(dataset, data_path):
    if _complete(dataset, directory):
      log.info("%s found via %s: %s", dataset.name, origin, os.path.abspath(directory))
      return os.path.abspath(directory)
    tried.append(f"{origin}: {directory}")
  if data_path:  # an explicit path that is wrong is an error, not a reason to download
    raise DatasetNotFound(f"no {dataset.name} ({files}) under --data-path {data_path} "
                          f"or {os.path.join(data_path, dataset.directory)} (--data-path is "
                          "the directory of a named data set; a click-log file, directory "
                          "or glob of your own goes in --data)")
  cache_dir = cache_dir or default_cache_dir()
  target = os.path.join(cache_dir, dataset.directory)
  if _complete(dataset, target):
    try:
      verify(dataset, target)
    except ValueError as error:
      raise DatasetNotFound(f"the cached {dataset.name} at {target} is damaged ({error}); "
                            "delete it to download it again") from error
    return os.path.abspath(target)
  tried.append(f"cache: {target}")
  if not download:
    raise DatasetNotFound(f"{dataset.name} ({files}) not found; tried " + "; ".join(tried))
  try:
    return download_dataset(dataset, cache_dir)
  except Exception as error:  # no network, bad checksum, ...
    raise DatasetNotFound(
        f"{dataset.name} not found (tried " + "; ".join(tried) + ") and the download from "
        f"{dataset.url} failed: {error}. Pass --data-path DIR or set ${ENV_DATA_DIR}.") from error


def download_dataset(dataset: NamedDataset, cache_dir: str, url: Optional[str] = None) -> str:
  """Downloads and unpacks `dataset` into cache_dir/<directory> once its files
  pass the checksums; nothing is left in the cache when they do not.

  Args:
    dataset: the set.
    cache_dir: where its directory goes.
    url: overrides dataset.url (tests use a file:// URL).

  Returns:
    The absolute directory.

  Raises:
    ValueError: the archive lacks a file, or a file's SHA-256 differs.
    OSError, urllib.error.URLError, zipfile.BadZipFile: the download or unpacking.
  """
  url = url or dataset.url
  log.info("downloading %s from %s", dataset.name, url)
  with urllib.request.urlopen(url, timeout=60) as response:
    payload = response.read()
  os.makedirs(cache_dir, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{dataset.directory}-", dir=cache_dir)
  try:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
      archive.extractall(staging)
    unpacked = os.path.join(staging, dataset.directory)
    verify(dataset, unpacked)
    target = os.path.join(cache_dir, dataset.directory)
    if os.path.isdir(target):
      shutil.rmtree(target)
    os.replace(unpacked, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return os.path.abspath(target)


def verify(dataset: NamedDataset, directory: str):
  """Checks the SHA-256 of every file the ingest reads.

  Raises:
    ValueError: a file is missing, or its checksum differs ("checksum mismatch
      for FILE"); for a release that changes in place the message says the
      download is a newer release and how to use it anyway.
  """
  for name, expected in dataset.sha256.items():
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
      raise ValueError(f"{name} is missing from the {dataset.name} archive")
    actual = sha256_of(path)
    if actual != expected:
      message = f"checksum mismatch for {name}: {actual} != {expected}"
      if dataset.changes_in_place:
        message += (f". GroupLens replaces {dataset.directory} with each new release, and "
                    f"this project pins {dataset.release}; the download is probably a newer "
                    "release. To use it anyway, unpack it yourself and pass its directory "
                    f"(--data {dataset.name} --data-path DIR, or --data DIR --format "
                    f"{dataset.format}); a copy found on disk is not checked")
      raise ValueError(message)


def locate_movielens_100k(data_path: Optional[str] = None, download: bool = True,
                          cache_dir: Optional[str] = None) -> str:
  """The ml-100k directory (u.data, u.item, u.user); see locate."""
  return locate("movielens-100k", data_path, download, cache_dir)
