"""Model files are read through tf.io.gfile, so any TF file system works (ram:// here
stands in for gs://)."""

import os

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
