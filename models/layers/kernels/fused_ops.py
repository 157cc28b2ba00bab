"""The fused kernels: built on first use into one library, loaded once.

  EtaHammingTopK      (hamming_topk_op.cc) ETA's retrieval, below;
  EtaGatherAttention  (gather_attention_op.cc) the gather + attention core of the
                      target attention over the retrieved behaviours at inference
                      (TargetAttention.attend_gathered).

TensorFlow's stock TopK runs at 10-20 ns per element on the machines we
measured, far from the ~0.6 ns of one XOR + popcount per (candidate, behaviour)
pair; the fused op writes each row's distances as bytes at about that speed, finds
the k-th distance with a few SIMD counting passes over them and picks the k
nearest in one more pass (about 1.2-1.6x the XOR + popcount loop alone for
L >= 1024, on one thread; rows are sharded over the intra-op threads). It is
built with the local C++ compiler against the installed TensorFlow (about a
minute, once) into a cache directory ($ETA_OPS_CACHE, default
~/.cache/eta-ctr/ops), keyed by the source, the TensorFlow version and the
machine. Where it cannot be built (no compiler), `load()` returns None and callers
use the stock ops, which give identical results.

SavedModels that contain either op need the library loaded before they load (the
built-in server does that); stock tensorflow_model_server does not have it, so
exports use the stock ops unless asked otherwise (ModelConfig.retrieval_kernel,
which governs both ops).
"""

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from typing import Optional

import tensorflow as tf

log = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = tuple(os.path.join(_HERE, name)
                for name in ("hamming_topk_op.cc", "gather_attention_op.cc"))
OP_NAME = "EtaHammingTopK"
ATTENTION_OP_NAME = "EtaGatherAttention"
OP_NAMES = (OP_NAME, ATTENTION_OP_NAME)

_lock = threading.Lock()
_module = None
_failed: Optional[str] = None


def _cache_dir() -> str:
  return os.environ.get("ETA_OPS_CACHE",
                        os.path.join(os.path.expanduser("~"), ".cache", "eta-ctr", "ops"))


def library_path() -> str:
  """Where the compiled library for these sources, TensorFlow and machine lives."""
  digest = hashlib.sha256()
  for source in SOURCES:
    with open(source, "rb") as handle:
      digest.update(handle.read())
  digest.update(" ".join([tf.__version__, platform.machine(), *tf.sysconfig.get_compile_flags(),
                          *tf.sysconfig.get_link_flags()]).encode())
  return os.path.join(_cache_dir(), f"eta_ops_{digest.hexdigest()[:16]}.so")


def build(output_path: str) -> str:
  """Compiles the kernel into output_path (atomically) and returns it."""
  compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not compiler:
    raise RuntimeError("no C++ compiler (g++) on PATH")
  flags = ["-O3", "-shared", "-fPIC"]
  if platform.machine() in ("x86_64", "AMD64"):
    flags.append("-mpopcnt")  # every x86-64 CPU since 2008; one instruction per word
  os.makedirs(os.path.dirname(output_path), exist_ok=True)
  handle, partial = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(output_path))
  os.close(handle)
  command = [compiler, *flags, *SOURCES, "-o", partial, *tf.sysconfig.get_compile_flags(),
             *tf.sysconfig.get_link_flags()]
  log.info("building the fused kernels (once, about a minute): %s", output_path)
  completed = subprocess.run(command, capture_output=True, text=True)
  if completed.returncode != 0:
    os.unlink(partial)
    raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
  os.replace(partial, output_path)
  return output_path


def load():
  """The loaded op module (with .eta_hamming_top_k and .eta_gather_attention), or None
  where it cannot be built.

  Set ETA_FUSED_KERNEL=0 to never build or load it.
  """
  global _module, _failed
  if os.environ.get("ETA_FUSED_KERNEL", "1") == "0":
    return None
  with _lock:
    if _module is not None or _failed is not None:
      return _module
    try:
      path = library_path()
      if not os.path.exists(path):
        build(path)
      _module = tf.load_op_library(path)
    except Exception as error:  # any failure falls back to the stock ops
      _failed = str(error)
      log.warning("fused kernels unavailable, using stock TensorFlow ops: %s",
                  _failed.splitlines()[0] if _failed else error)
    return _module


def available() -> bool:
  return load() is not None
