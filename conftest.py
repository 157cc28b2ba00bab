"""pytest set-up for every test: TensorFlow's environment, as the entry points have it."""

import pytest

from eta_ctr import runtime


def pytest_configure(config):  # pylint: disable=unused-argument
  """Before any test module imports TensorFlow (eta_ctr.runtime)."""
  runtime.prepare()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):  # pylint: disable=unused-argument
  """Groups for `pytest -n N --dist loadgroup` (the Makefile's e2e run): the tests
  that share the session's `pipeline_run` fixture (tests/conftest.py) run on one
  worker, so the pipeline runs once; every other test file is a group of its own,
  so its module-scoped fixtures run once too. Without xdist the marker does nothing.

  `tryfirst`: xdist's worker reads the `xdist_group` markers in its own
  `pytest_collection_modifyitems` (it appends `@group` to the node id); a marker
  added after that hook is ignored, and every test becomes its own group."""
  for item in items:
    group = ("pipeline_run" if "pipeline_run" in getattr(item, "fixturenames", ())
             else item.nodeid.split("::", 1)[0])
    item.add_marker(pytest.mark.xdist_group(group))
