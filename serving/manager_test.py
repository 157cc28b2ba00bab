"""Version switching: load before swap, in-flight counting, half-written versions."""

import os
import shutil
import threading

import pytest

from serving import manager as manager_lib
from serving.errors import ServingError
from serving.manager import ModelManager


class FakeServable:
  def __init__(self, path, version):
    self.path, self.version, self.in_flight, self.closed = path, version, 0, False

  def close(self):
    self.closed = True


def _version_dir(base, version):
  path = os.path.join(base, str(version))
  os.makedirs(path)
  with open(os.path.join(path, "saved_model.pb"), "wb") as handle:
    handle.write(b"pb")
  return path


def _fake_manager(base, **kwargs):
  loaded = []

  def loader(path, version):
    loaded.append(FakeServable(path, version))
    return loaded[-1]

  return ModelManager(str(base), poll_seconds=0.0, warm=False, loader=loader, **kwargs), loaded


def test_old_version_is_closed_only_after_its_last_request(tmp_path):
  _version_dir(tmp_path, 1)
  manager, loaded = _fake_manager(tmp_path)
  with pytest.raises(ServingError, match="no version of the model is loaded yet"):
    with manager.acquire():
      pass
  assert manager.poll_once() == 1
  with manager.acquire() as first:
    _version_dir(tmp_path, 2)
    assert manager.poll_once() == 2
    # New requests go to version 2; the one in flight still holds version 1.
    with manager.acquire() as second:
      assert second.version == 2
    assert not first.closed
    assert [s.state for s in manager.statuses()] == ["AVAILABLE", "UNLOADING"]
    with pytest.raises(ServingError, match="version 1 is not available; serving version 2"):
      with manager.acquire(1):
        pass
  assert first.closed and not loaded[1].closed
  assert [(s.version, s.state) for s in manager.statuses()] == [(2, "AVAILABLE")]


def test_idle_old_version_is_closed_at_the_swap(tmp_path):
  _version_dir(tmp_path, 1)
  manager, loaded = _fake_manager(tmp_path)
  manager.poll_once()
  _version_dir(tmp_path, 5)
  assert manager.poll_once() == 5 and loaded[0].closed
  with manager.acquire(5) as servable:
    assert servable is loaded[1]


def test_failed_version_is_retried_when_its_files_change_and_rollback(tmp_path):
  _version_dir(tmp_path, 1)
  attempts = []

  def loader(path, version):
    attempts.append(version)
    if not os.path.exists(os.path.join(path, "variables")):
      raise FileNotFoundError("variables/ missing")
    return FakeServable(path, version)

  os.makedirs(tmp_path / "1" / "variables")
  manager = ModelManager(str(tmp_path), poll_seconds=0.0, warm=False, loader=loader)
  assert manager.poll_once() == 1
  _version_dir(tmp_path, 2)
  assert manager.poll_once() is None and manager.poll_once() is None
  assert attempts == [1, 2]  # not retried while its files stay the same
  assert [(s.version, s.state) for s in manager.statuses()] == [(2, "END"), (1, "AVAILABLE")]
  assert "variables/ missing" in manager.statuses()[0].error
  os.makedirs(tmp_path / "2" / "variables")
  assert manager.poll_once() is None           # changed since the last look: wait
  assert manager.statuses()[0].state == "START"
  assert manager.poll_once() == 2
  shutil.rmtree(tmp_path / "2")                # the served version is withdrawn
  assert manager.poll_once() == 1


def test_half_written_real_savedmodel_is_never_served(tmp_path, toy_exports):
  base = tmp_path / "models"
  shutil.copytree(toy_exports["a"], base / "1")
  manager = ModelManager(str(base), poll_seconds=0.0)
  assert manager.poll_once() == 1
  # saved_model.pb (and assets) first, variables later, as a non-atomic copy does.
  partial = base / "2"
  partial.mkdir()
  shutil.copy(os.path.join(toy_exports["b"], "saved_model.pb"), partial)
  assert manager.poll_once() is None
  assert manager.current_version == 1
  assert manager.statuses()[0].state == manager_lib.END
  shutil.copytree(os.path.join(toy_exports["b"], "variables"), partial / "variables")
  manager.poll_once()
  assert manager.poll_once() == 2
  manager.stop()


def test_new_version_loads_while_the_old_one_serves(tmp_path):
  _version_dir(tmp_path, 1)
  release, loading = threading.Event(), threading.Event()

  def loader(path, version):
    if version == 2:
      loading.set()  # the poll thread is inside the load: no timing assumed
      release.wait(10)
    return FakeServable(path, version)

  manager = ModelManager(str(tmp_path), poll_seconds=0.0, warm=False, loader=loader)
  manager.poll_once()
  _version_dir(tmp_path, 2)
  poll = threading.Thread(target=manager.poll_once)
  poll.start()
  try:
    assert loading.wait(30)
    assert not manager.wait_until_available(0.1, version=2)
    assert [(s.version, s.state) for s in manager.statuses()] == [(2, "LOADING"),
                                                                   (1, "AVAILABLE")]
    with manager.acquire() as servable:
      assert servable.version == 1
  finally:
    release.set()
    poll.join()
  assert manager.wait_until_available(1, version=2)
