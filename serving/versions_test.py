"""Version directories, and when a version's files have settled."""

import os

from serving import versions


def test_lists_numeric_directories_newest_first(tmp_path):
  for name in ("3", "10", "tmp", ".staging-11"):
    (tmp_path / name).mkdir()
  (tmp_path / "12").write_text("a file, not a version")
  assert [v for v, _ in versions.list_versions(str(tmp_path))] == [10, 3]


def test_a_version_settles_once_its_files_stop_changing(tmp_path):
  path = tmp_path / "1"
  path.mkdir()
  (path / "variables").mkdir()
  files = versions.fingerprint(str(path))
  assert not versions.is_settled(files, None, quiet_seconds=0)   # no saved_model.pb yet
  (path / "saved_model.pb").write_bytes(b"pb")
  first = versions.fingerprint(str(path))
  # At the first look a fresh file is not settled; an old one is.
  assert not versions.is_settled(first, None, quiet_seconds=60)
  assert versions.is_settled(first, None, quiet_seconds=60,
                             now=os.path.getmtime(path / "saved_model.pb") + 61)
  (path / "variables" / "variables.index").write_bytes(b"index")
  second = versions.fingerprint(str(path))
  assert not versions.is_settled(second, first, quiet_seconds=0)  # changed since last look
  assert versions.is_settled(second, second, quiet_seconds=60)    # unchanged since
