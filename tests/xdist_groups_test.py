"""The e2e run's worker groups (root conftest.py) hold under `-n 2 --dist loadgroup`.

Runs a small pytest session, with the project's root conftest.py, on tests that
record which worker ran them and how often a session fixture named
`pipeline_run` and a module fixture were set up. Without the groups every test
is its own xdist unit, and CI runs the whole pipeline once per worker. Two
ways that happened: the root conftest's hook ran after xdist's own (which turns
the marker into a node-id suffix; hence `tryfirst`), and pytest 9.2's structured
node ids ignore that suffix (pytest-xdist#1386; constraints.txt pins pytest 9.1.1).
"""

import collections
import os
import shutil
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFTEST = """
import os
import pytest

def _record(what):
  with open(os.environ["XDIST_GROUPS_LOG"], "a") as handle:
    handle.write(what + " " + os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")

@pytest.fixture(scope="session")
def pipeline_run():
  _record("setup:pipeline_run")

@pytest.fixture(scope="module")
def module_run():
  _record("setup:module_run")

@pytest.fixture
def record(request):
  return lambda: _record("ran:" + request.node.name.split("@")[0])
"""

# Two files share pipeline_run (as pipeline_test.py and serving_e2e_test.py do);
# one has a module fixture and tests of its own (as serving_features_e2e_test.py).
_TESTS = {
    "a_test.py": "".join(f"def test_a{i}(pipeline_run, record):\n  record()\n\n"
                         for i in range(4)),
    "b_test.py": "".join(f"def test_b{i}(pipeline_run, record):\n  record()\n\n"
                         for i in range(3)) + "def test_b_alone(record):\n  record()\n",
    "c_test.py": "".join(f"def test_c{i}(module_run, record):\n  record()\n\n"
                         for i in range(4)),
    "d_test.py": "".join(f"def test_d{i}(record):\n  record()\n\n" for i in range(4)),
}


def test_pipeline_run_and_module_fixtures_run_once_under_loadgroup(tmp_path):
  shutil.copy(os.path.join(ROOT, "conftest.py"), tmp_path / "conftest.py")
  (tmp_path / "pytest.ini").write_text("[pytest]\npython_files = *_test.py\n")
  sub = tmp_path / "suite"
  sub.mkdir()
  (sub / "conftest.py").write_text(textwrap.dedent(_CONFTEST))
  for name, text in _TESTS.items():
    (sub / name).write_text(text)
  log = tmp_path / "log.txt"
  # Not the outer run's xdist worker identity (make test-unit runs this on a worker).
  env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
  env.update(XDIST_GROUPS_LOG=str(log), PYTHONPATH=ROOT)
  result = subprocess.run(
      [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
       "--dist", "loadgroup", "suite"],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stdout + result.stderr

  lines = [line.split() for line in log.read_text().splitlines()]
  setups = collections.Counter(what for what, _ in lines if what.startswith("setup:"))
  assert setups == {"setup:pipeline_run": 1, "setup:module_run": 1}, lines
  ran = [what for what, _ in lines if what.startswith("ran:")]
  assert len(ran) == 16, lines
  # Every pipeline_run test, in either file, on one worker; each other file on one worker.
  pipeline_workers = {w for what, w in lines
                      if what.startswith(("ran:test_a", "ran:test_b"))
                      and what != "ran:test_b_alone"}
  assert len(pipeline_workers) == 1, lines
  assert len({w for what, w in lines if what.startswith("ran:test_c")}) == 1, lines
