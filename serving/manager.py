"""The versions of one model: which is served, loading the next, retiring the last.

One poller thread scans the base path every poll interval. The newest version
whose files have settled is loaded and warmed *while the current one keeps
serving*; only then is it swapped in, under a lock, in one assignment. Requests
hold the version they started on (`acquire` counts them in flight), so a
retired version is closed by whichever comes last: the swap, if nothing is in
flight, or the release of its last request.

A version that fails to load is logged, reported as END with its error, and
tried again once its files change (or after retry_seconds); one whose files
changed while it loaded is discarded and loaded again once they settle. If the
served version's directory disappears, the newest remaining one is loaded (a
rollback); if none remains, the current one stays.
"""

import contextlib
import dataclasses
import logging
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional

from serving import versions, warmup
from serving.errors import not_found, unavailable
from serving.servable import Servable

log = logging.getLogger(__name__)

# TF Serving's ModelVersionStatus states.
START, LOADING, AVAILABLE, UNLOADING, END, UNKNOWN = (
    "START", "LOADING", "AVAILABLE", "UNLOADING", "END", "UNKNOWN")


@dataclasses.dataclass(frozen=True)
class VersionStatus:
  version: int
  state: str
  error: str = ""


@dataclasses.dataclass(frozen=True)
class _Failure:
  files: versions.Fingerprint
  message: str
  at: float


class ModelManager:
  """Loads, swaps and retires versions of the model under base_path."""

  def __init__(self, base_path: str, poll_seconds: float = 2.0, warm: bool = True,
               retry_seconds: float = 60.0,
               loader: Callable[[str, int], Servable] = Servable.load):
    self.base_path = base_path
    self.poll_seconds = poll_seconds
    self._warm = warm
    self._retry_seconds = retry_seconds
    self._loader = loader
    self._lock = threading.Lock()
    self._changed = threading.Condition(self._lock)
    self._current: Optional[Servable] = None
    self._retiring: List[Servable] = []
    self._loading: Optional[int] = None
    self._pending: List[int] = []          # newer than current, files not settled yet
    self._failed: Dict[int, _Failure] = {}
    self._seen: Dict[int, versions.Fingerprint] = {}  # poller thread only
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  # --- requests -------------------------------------------------------------

  @contextlib.contextmanager
  def acquire(self, version: Optional[int] = None) -> Iterator[Servable]:
    """The served version (or the one asked for, if it is the served one), held
    in flight until the block exits."""
    with self._lock:
      servable = self._current
      if servable is None:
        raise unavailable(f"no version of the model is loaded yet (watching {self.base_path})")
      if version is not None and version != servable.version:
        raise not_found(f"version {version} is not available; serving version "
                        f"{servable.version}")
      servable.in_flight += 1
    try:
      yield servable
    finally:
      with self._lock:
        servable.in_flight -= 1
        finished = servable.in_flight == 0 and servable in self._retiring
        if finished:
          self._retiring.remove(servable)
      if finished:
        self._close(servable)

  @property
  def current_version(self) -> Optional[int]:
    with self._lock:
      return self._current.version if self._current else None

  def statuses(self) -> List[VersionStatus]:
    """Every version worth reporting, newest first (empty: nothing seen yet)."""
    with self._lock:
      found: Dict[int, VersionStatus] = {}
      for version, failure in self._failed.items():
        found[version] = VersionStatus(version, END, failure.message)
      for version in self._pending:  # being rewritten since it failed, perhaps
        found[version] = VersionStatus(version, START)
      for servable in self._retiring:
        found[servable.version] = VersionStatus(servable.version, UNLOADING)
      if self._loading is not None:
        found[self._loading] = VersionStatus(self._loading, LOADING)
      if self._current is not None:
        found[self._current.version] = VersionStatus(self._current.version, AVAILABLE)
    return [found[v] for v in sorted(found, reverse=True)]

  def wait_until_available(self, timeout: float, version: Optional[int] = None) -> bool:
    """Blocks until a version (or that version) is served; False on timeout."""
    deadline = time.monotonic() + timeout
    with self._changed:
      while True:
        current = self._current.version if self._current else None
        if current is not None and (version is None or current == version):
          return True
        left = deadline - time.monotonic()
        if left <= 0:
          return False
        self._changed.wait(left)

  # --- polling --------------------------------------------------------------

  def start(self):
    """Polls now, then every poll_seconds on a daemon thread."""
    self._thread = threading.Thread(target=self._run, name="model-poller", daemon=True)
    self._thread.start()

  def stop(self):
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=max(10.0, self.poll_seconds * 2))
    with self._lock:
      servable, self._current = self._current, None
    if servable is not None and servable.in_flight == 0:
      self._close(servable)

  def _run(self):
    while not self._stop.is_set():
      try:
        self.poll_once()
      except Exception:  # the poller must outlive any file-system hiccup
        log.exception("polling %s failed; trying again in %.1fs", self.base_path,
                      self.poll_seconds)
      self._stop.wait(self.poll_seconds)

  def poll_once(self) -> Optional[int]:
    """One scan: loads and swaps in the newest settled version if it is not the
    served one. Returns the version swapped in, if any."""
    try:
      found = versions.list_versions(self.base_path)
    except Exception as error:  # missing or unreadable base path
      log.warning("cannot list %s: %s", self.base_path, error)
      return None
    current = self.current_version
    swapped, pending = None, []
    on_disk = {version for version, _ in found}
    for stale in set(self._seen) - on_disk:
      self._seen.pop(stale)
    for version, path in found:  # newest first
      if version == current or self._stop.is_set():
        break
      files = versions.fingerprint(path)
      previous, self._seen[version] = self._seen.get(version), files
      if not versions.is_settled(files, previous, self.poll_seconds):
        pending.append(version)
        continue
      failure = self._failed.get(version)
      if failure and failure.files == files and (
          time.monotonic() - failure.at < self._retry_seconds):
        continue
      if self._load_and_swap(version, path, files):
        swapped = version
        break
    with self._lock:
      served = self._current.version if self._current else None
      self._pending = [v for v in pending if served is None or v > served]
      for gone in set(self._failed) - on_disk:
        self._failed.pop(gone)
    return swapped

  def _load_and_swap(self, version: int, path: str, files: versions.Fingerprint) -> bool:
    with self._lock:
      self._loading = version
    started = time.monotonic()
    try:
      servable = self._loader(path, version)
      if self._warm:
        warmup.warm(servable)
    except Exception as error:  # a half-written or broken version: keep the current one
      message = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:500]}"
      log.warning("version %d at %s did not load (%s); retrying when its files change",
                  version, path, message)
      with self._lock:
        self._loading = None
        self._failed[version] = _Failure(files, message, time.monotonic())
      return False
    if versions.fingerprint(path) != files:
      # Written to while it loaded: what was read may mix old and new files.
      log.warning("version %d at %s changed while it was loading; loading it again once "
                  "its files settle", version, path)
      servable.close()
      with self._lock:
        self._loading = None
      return False
    with self._changed:
      previous, self._current = self._current, servable
      self._loading = None
      self._failed.pop(version, None)
      idle = previous is not None and previous.in_flight == 0
      if previous is not None and not idle:
        self._retiring.append(previous)
      self._changed.notify_all()
    if idle:
      self._close(previous)
    log.info("serving version %d of %s (loaded and warmed in %.1fs%s)", version,
             self.base_path, time.monotonic() - started,
             f"; retiring version {previous.version}" if previous else "")
    return True

  @staticmethod
  def _close(servable: Servable):
    servable.close()
    log.info("version %d unloaded", servable.version)
