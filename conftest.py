"""pytest set-up for every test: TensorFlow's environment, as the entry points have it."""

from eta_ctr import runtime


def pytest_configure(config):  # pylint: disable=unused-argument
  """Before any test module imports TensorFlow (eta_ctr.runtime)."""
  runtime.prepare()
