"""Version directories under a model base path, and when one is safe to load.

A version is a directory named by a non-negative integer (the Pusher writes
unix seconds). The Pusher copies files one by one, so a directory can exist,
even with saved_model.pb, before the variables are complete: a version is only
tried once its files have stopped changing (the same fingerprint as at the last
look, or nothing modified for a while), and a failed load is tried again when
the files change.
"""

import os
import time
from typing import List, Optional, Tuple

import tensorflow as tf

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")

# (relative path, size, mtime in ns) of every file and directory ("name/", 0, 0),
# sorted; None while unreadable.
Fingerprint = Optional[Tuple[Tuple[str, int, int], ...]]


def list_versions(base_path: str) -> List[Tuple[int, str]]:
  """[(version, path)], newest first; files and non-numeric names are skipped."""
  found = []
  for entry in tf.io.gfile.listdir(base_path):
    name = entry.rstrip("/")
    if not name.isdigit():
      continue
    path = os.path.join(base_path, name)
    if tf.io.gfile.isdir(path):
      found.append((int(name), path))
  return sorted(found, reverse=True)


def fingerprint(path: str) -> Fingerprint:
  """What is on disk under path now; None while it cannot be listed consistently."""
  entries = []
  try:
    for directory, subdirectories, files in tf.io.gfile.walk(path):
      for name in subdirectories:  # an empty new directory is a change too
        entries.append((os.path.relpath(os.path.join(directory, name), path) + "/", 0, 0))
      for name in files:
        full = os.path.join(directory, name)
        stat = tf.io.gfile.stat(full)
        entries.append((os.path.relpath(full, path), stat.length, stat.mtime_nsec))
  except tf.errors.OpError:  # a file vanished between listing and stat
    return None
  return tuple(sorted(entries))


def has_saved_model(files: Fingerprint) -> bool:
  return bool(files) and any(rel in SAVED_MODEL_FILES for rel, _, _ in files)


def is_settled(current: Fingerprint, previous: Fingerprint, quiet_seconds: float,
               now: Optional[float] = None) -> bool:
  """Loadable as far as the files tell: a SavedModel, and no longer being written.

  Unchanged since the previous look; or, at the first look, untouched for
  quiet_seconds (so a version already complete at start-up loads without
  waiting a poll). Files that changed between two looks are still being written.
  """
  if not has_saved_model(current):
    return False
  if current == previous:
    return True
  if previous is not None:
    return False
  now = time.time() if now is None else now
  newest = max(mtime for _, _, mtime in current) / 1e9
  return now - newest >= quiet_seconds
