"""The house rules that imports can break: no import cycle (not even through an
import deferred into a function), a CLI that starts without TensorFlow, no
installed `kubeflow` package, and no side effects on import."""

import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("eta_ctr", "components", "models", "pipeline", "serving", "benchmarks")


def _project_modules():
  """{dotted module name: path} of the project's non-test modules."""
  modules = {}
  for package in PACKAGES:
    for directory, _, files in os.walk(os.path.join(REPO, package)):
      for name in files:
        if not name.endswith(".py") or name.endswith("_test.py") or name == "conftest.py":
          continue
        path = os.path.join(directory, name)
        dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        modules[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
  return modules


def _imports(path, modules):
  """The project modules `path` imports anywhere in its body (deferred ones too)."""
  with open(path) as handle:
    tree = ast.parse(handle.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      for alias in node.names:  # `from package import module` imports the module
        submodule = f"{node.module}.{alias.name}"
        found.add(submodule if submodule in modules else node.module)
  return {name for name in found if name in modules}


def _cycles(graph):
  cycles, state = [], {}

  def visit(node, stack):
    state[node] = "open"
    stack.append(node)
    for target in sorted(graph[node]):
      if state.get(target) == "open":
        cycles.append(stack[stack.index(target):] + [target])
      elif target not in state:
        visit(target, stack)
    stack.pop()
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [])
  return cycles


def test_no_import_cycle_even_through_deferred_imports():
  modules = _project_modules()
  assert "eta_ctr.cli" in modules and "serving.cli" in modules
  graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
  assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
  assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
  assert _cycles({"a": {"b"}, "b": set()}) == []


def _python(code, env_drop=("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")):
  env = {k: v for k, v in os.environ.items() if k not in env_drop}
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, text=True,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)


def test_eta_help_and_synth_import_no_tensorflow_beam_or_tfx(tmp_path):
  log_path = tmp_path / "log.csv"
  result = _python(
      "import sys, contextlib, io\n"
      "from eta_ctr import cli\n"
      "with contextlib.redirect_stdout(io.StringIO()):\n"
      "  try:\n"
      "    cli.main(['--help'])\n"
      "  except SystemExit as done:\n"
      "    assert done.code == 0\n"
      f"  assert cli.main(['synth', '--events', '50', '--output', {str(log_path)!r}]) == 0\n"
      "heavy = sorted(m for m in ('tensorflow', 'apache_beam', 'tfx', 'tensorflow_transform')\n"
      "               if m in sys.modules)\n"
      "print('heavy:', heavy)\n")
  assert result.returncode == 0, result.stdout
  assert "heavy: []" in result.stdout
  assert log_path.read_text().count("\n") == 51


def test_entry_point_sets_keras_2_before_tensorflow_and_silences_it():
  """What `eta` does first (eta_ctr.runtime.prepare), in a process without the variables."""
  result = _python(
      "from eta_ctr import runtime\n"
      "runtime.prepare()\n"
      "import tensorflow as tf, tf_keras\n"
      "assert tf.keras.layers.Layer is tf_keras.layers.Layer\n"
      "runtime.require_legacy_keras()\n"
      "print('ok')\n")
  assert result.returncode == 0, result.stdout
  assert result.stdout.strip().splitlines()[-1] == "ok"
  assert "Unable to register" not in result.stdout  # CUDA-factory chatter


def test_tensorflow_imported_with_keras_3_fails_at_once_saying_what_to_do():
  result = _python(
      "import tensorflow as tf\n"
      "tf.keras.layers  # resolves tf.keras to Keras 3 (no TF_USE_LEGACY_KERAS)\n"
      "from eta_ctr import runtime\n"
      "try:\n"
      "  runtime.prepare()\n"
      "except runtime.KerasVersionError as error:\n"
      "  print('refused:', error)\n")
  assert result.returncode == 0, result.stdout
  assert "refused:" in result.stdout and "TF_USE_LEGACY_KERAS=1" in result.stdout


def test_no_side_effects_on_import():
  """Importing the model and serving packages changes neither TensorFlow's
  autograph rules nor the process's warning filters."""
  result = _python(
      "from eta_ctr import runtime\n"
      "runtime.prepare()\n"
      "import warnings\n"
      "from tensorflow.python.autograph.core import config\n"
      "rules, filters = config.CONVERSION_RULES, list(warnings.filters)\n"
      "import models, models.trainer, models.export, serving.validation, serving.server\n"
      "assert config.CONVERSION_RULES == rules, 'autograph rules changed'\n"
      "assert warnings.filters == filters, 'warning filters changed'\n"
      "print('ok')\n")
  assert result.returncode == 0, result.stdout
  assert result.stdout.strip().splitlines()[-1] == "ok"


def test_no_kubeflow_package_is_installed():
  """kubeflow/ holds deployment assets; a `kubeflow` package would shadow the
  namespace of the Kubeflow SDKs (kubeflow-training, katib)."""
  assert not os.path.exists(os.path.join(REPO, "kubeflow", "__init__.py"))
  assert not [name for name in os.listdir(os.path.join(REPO, "kubeflow"))
              if name.endswith(".py")]
  with open(os.path.join(REPO, "setup.py")) as handle:
    setup_py = handle.read()
  assert '"kubeflow' not in setup_py


@pytest.mark.parametrize("module", ["serving.cli", "pipeline.kubeflow_training"])
def test_python_m_entry_points_start(module):
  result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
                          env={k: v for k, v in os.environ.items()
                               if k != "TF_USE_LEGACY_KERAS"})
  assert result.returncode == 0, result.stdout
  assert "usage:" in result.stdout
