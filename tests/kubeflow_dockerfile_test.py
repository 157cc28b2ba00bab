"""kubeflow/Dockerfile, read (Docker cannot run here): Python 3.10, the pinned stack
from constraints.txt, the Beam SDK launcher of the same Beam, Keras 2."""

import os
import re

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
KUBEFLOW = os.path.join(REPO, "kubeflow")


def _read(*parts):
  with open(os.path.join(*parts)) as handle:
    return handle.read()


def _instructions(text):
  """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
  lines, current = [], ""
  for raw in text.splitlines():
    line = raw.strip()
    if not line or line.startswith("#"):
      continue
    if line.endswith("\\"):
      current += line[:-1] + " "
      continue
    lines.append(current + line)
    current = ""
  return [tuple(line.split(None, 1)) for line in lines]


def _normalise(name):
  return re.sub(r"[-_.]+", "-", name).lower()


def _constraints():
  pins = {}
  for line in _read(REPO, "constraints.txt").splitlines():
    line = line.split("#", 1)[0].strip()
    if "==" in line:
      name, version = line.split("==", 1)
      pins[_normalise(name.split("[", 1)[0])] = version.strip()
  return pins


INSTRUCTIONS = _instructions(_read(KUBEFLOW, "Dockerfile"))
ARGS = dict(arg.split("=", 1) for kind, arg in INSTRUCTIONS if kind == "ARG" and "=" in arg)
FROMS = [arg for kind, arg in INSTRUCTIONS if kind == "FROM"]
RUNS = [arg for kind, arg in INSTRUCTIONS if kind == "RUN"]
PIP_INSTALLS = [cmd.strip() for run in RUNS for cmd in run.split("&&")
                if re.search(r"\bpip install\b", cmd)]


def _expand(text):
  return re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], text)


def test_python_base_is_3_10_as_pinned_for_the_project():
  python_version = ARGS["PYTHON_VERSION"]
  assert python_version.split(".")[:2] == ["3", "10"]
  assert python_version == _read(REPO, ".python-version").strip()
  python_bases = [_expand(f) for f in FROMS if f.startswith("python:")]
  assert python_bases and all(base.startswith(f"python:{python_version}-slim")
                              for base in python_bases)
  final = _expand(FROMS[-1])
  assert final.startswith("python:3.10"), "the image that runs must be the Python one"


def test_beam_sdk_launcher_matches_python_and_beam_pins():
  assert ARGS["BEAM_VERSION"] == _constraints()["apache-beam"]
  (beam_from,) = [_expand(f) for f in FROMS if f.startswith("apache/beam")]
  assert beam_from.split()[0] == f"apache/beam_python3.10_sdk:{ARGS['BEAM_VERSION']}"
  assert ("COPY", "--from=beam_sdk /opt/apache/beam /opt/apache/beam") in INSTRUCTIONS
  assert ("ENTRYPOINT", '["/opt/apache/beam/boot"]') in INSTRUCTIONS


def test_project_is_installed_with_the_constraints():
  project_installs = [cmd for cmd in PIP_INSTALLS if re.search(r"\s\.(\s|$)", cmd + " ")]
  assert len(project_installs) == 2  # dependencies layer, then the code
  for cmd in project_installs:
    assert "-c constraints.txt" in cmd, cmd
  copies = [arg for kind, arg in INSTRUCTIONS if kind == "COPY"]
  assert any("constraints.txt" in arg for arg in copies)


def test_explicit_pins_equal_the_constraints():
  pins = _constraints()
  explicit = [token.strip("\"'") for cmd in PIP_INSTALLS for token in cmd.split()
              if "==" in token]
  for token in explicit:
    name, version = token.split("==", 1)
    name = _normalise(name.split("[", 1)[0])
    assert name in pins, f"{token}: pinned in the Dockerfile but not in constraints.txt"
    assert version == pins[name], f"{token} != constraints.txt {name}=={pins[name]}"


def test_runtime_environment():
  env = " ".join(arg for kind, arg in INSTRUCTIONS if kind == "ENV")
  assert re.search(r"\bTF_USE_LEGACY_KERAS=1\b", env)
  assert re.search(r"\bRUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1\b", env)
  assert "PATH=/opt/venv/bin:$PATH" in env


@pytest.mark.parametrize("excluded", [".venv", ".git", "out", "ml-100k"])
def test_build_context_leaves_out_the_venv_and_data(excluded):
  ignored = _read(KUBEFLOW, "Dockerfile.dockerignore").splitlines()
  assert excluded in ignored
