"""Model files are read through tf.io.gfile, so any TF file system works (ram:// here
stands in for gs://); signatures are called directly, with the public call's answers."""

import os

import numpy as np
import tensorflow as tf

from serving import servable, versions


def _copy_tree(source: str, target: str):
  for directory, _, files in tf.io.gfile.walk(source):
    relative = os.path.relpath(directory, source)
    destination = target if relative == "." else f"{target}/{relative}"
    tf.io.gfile.makedirs(destination)
    for name in files:
      tf.io.gfile.copy(os.path.join(directory, name), f"{destination}/{name}", overwrite=True)


def test_a_model_on_a_non_local_file_system_is_read_and_loaded(toy_exports):
  base = "ram://servable_test/models"
  _copy_tree(toy_exports["a"], f"{base}/7")
  assert versions.list_versions(base) == [(7, f"{base}/7")]
  files = versions.fingerprint(f"{base}/7")
  assert versions.has_saved_model(files)
  assert not servable.uses_fused_kernel(f"{base}/7")
  assert {"serving_default", "score"} <= set(servable.read_signature_defs(f"{base}/7"))
  loaded = servable.Servable.load(f"{base}/7", 7)
  assert loaded.signature_names == ["score", "serving_default"]


def test_signatures_are_called_directly_with_the_public_call_s_answers(toy_exports):
  """Requests call each signature's function with its flat arguments (no
  per-call re-binding); the answers are those of the public keyword call, exactly."""
  from serving import requests, testing
  loaded = servable.Servable.load(toy_exports["a"], 1)
  assert all(loaded._calls[name].direct for name in loaded.signature_names)
  for name, inputs in (("score", requests.score_inputs(testing.QUERY)),
                       ("serving_default", {"examples": np.array(
                           requests.examples_for_query(testing.QUERY), dtype=object)})):
    direct = loaded.run(name, inputs)
    public = loaded._signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    assert set(direct) == set(public)
    for output, value in public.items():
      np.testing.assert_array_equal(direct[output], value.numpy())
    loaded._calls[name]._flat = None  # the fallback: the public call itself
    for output, value in loaded.run(name, inputs).items():
      np.testing.assert_array_equal(value, direct[output])
