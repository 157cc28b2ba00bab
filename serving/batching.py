"""Cross-request batching in the built-in server (off by default), as TF Serving's
--enable_batching with its batching parameters.

A request to a batched signature (`serving_default` by default) is validated on
its own thread first, so a malformed request is refused alone and never joins a
batch. It then joins the open batch of its version and signature; the batch is
closed when it holds max_batch_size examples (a request that would overflow it
starts the next one) or batch_timeout_micros after its first request arrived,
and one of num_batch_threads threads runs it: each input is concatenated along
the example axis (dimension 0), the signature runs once, and every output is
split back by each request's rows. At most max_enqueued_batches closed batches
wait for a thread; beyond that a request is answered UNAVAILABLE at once, as
TF Serving does.

If the batched run fails (the model refusing something validation let through),
its requests are run one by one, so only the one at fault gets the error. A
request of max_batch_size rows or more, or whose inputs do not share a first
dimension, runs on its own.

`score` is never batched: it takes one user's history and a scalar time (TF
Serving's batching breaks it; see serving/model_server.py).
"""

import collections
import dataclasses
import logging
import threading
import time
from typing import Callable, Deque, Dict, List, Mapping, Optional, Tuple

import numpy as np

from models import signatures

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
  """TF Serving's BatchingParameters (the same defaults as serving/model_server.py writes)."""
  max_batch_size: int = 256          # examples per batch
  batch_timeout_micros: int = 2000   # longest wait for a batch to fill
  max_enqueued_batches: int = 64     # closed batches waiting for a thread
  num_batch_threads: int = 4         # batches run at once
  signatures: Tuple[str, ...] = (signatures.DEFAULT_SIGNATURE,)

  def __post_init__(self):
    for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
    if self.batch_timeout_micros < 0:
      raise ValueError(f"batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")
    if signatures.SCORE_SIGNATURE in self.signatures:
      raise ValueError(f"'{signatures.SCORE_SIGNATURE}' cannot be batched (one history and a "
                       "scalar request time per request)")

  def parameters(self) -> Dict[str, int]:
    """The four BatchingParameters fields, for tensorflow_model_server's batching.config."""
    return {"max_batch_size": self.max_batch_size,
            "batch_timeout_micros": self.batch_timeout_micros,
            "max_enqueued_batches": self.max_enqueued_batches,
            "num_batch_threads": self.num_batch_threads}


# run(servable, signature name, inputs) -> outputs: Servable.run, or a stand-in in tests.
Runner = Callable[[object, str, Mapping[str, np.ndarray]], Dict[str, np.ndarray]]


def _servable_run(servable, signature: str, inputs):
  return servable.run(signature, inputs)


class _Task:
  __slots__ = ("inputs", "rows", "done", "outputs", "error")

  def __init__(self, inputs: Mapping[str, np.ndarray], rows: int):
    self.inputs = inputs
    self.rows = rows
    self.done = threading.Event()
    self.outputs: Optional[Dict[str, np.ndarray]] = None
    self.error: Optional[BaseException] = None

  def finish(self, outputs=None, error=None):
    self.outputs, self.error = outputs, error
    self.done.set()


class _Batch:
  __slots__ = ("servable", "signature", "tasks", "rows", "deadline")

  def __init__(self, servable, signature: str, deadline: float):
    self.servable = servable
    self.signature = signature
    self.tasks: List[_Task] = []
    self.rows = 0
    self.deadline = deadline


def rows_of(inputs: Mapping[str, np.ndarray]) -> Optional[int]:
  """The examples in a request: the common first dimension of every input (None
  when an input is a scalar or they disagree)."""
  sizes = {value.shape[0] if value.ndim else None for value in inputs.values()}
  if len(sizes) != 1 or None in sizes:
    return None
  return sizes.pop()


class Batcher:
  """Batches requests of the configured signatures; start() / stop()."""

  def __init__(self, config: BatchingConfig, run: Runner = _servable_run):
    self.config = config
    self._run = run
    self._timeout = config.batch_timeout_micros / 1e6
    self._cond = threading.Condition()
    self._open: Dict[Tuple[int, str], _Batch] = {}
    self._ready: Deque[_Batch] = collections.deque()
    self._stopping = False
    self._threads: List[threading.Thread] = []
    self.batches_run = 0   # counters for tests and logs (under _cond)
    self.requests_batched = 0

  def batches(self, signature: str) -> bool:
    return signature in self.config.signatures

  def start(self) -> "Batcher":
    for number in range(self.config.num_batch_threads):
      thread = threading.Thread(target=self._work, name=f"batch-{number}", daemon=True)
      thread.start()
      self._threads.append(thread)
    return self

  def stop(self, timeout: float = 10.0):
    """Runs what is queued, then ends the threads; later requests get UNAVAILABLE."""
    with self._cond:
      self._stopping = True
      self._cond.notify_all()
    for thread in self._threads:
      thread.join(timeout)
    self._threads = []

  # --- request threads --------------------------------------------------------

  def run(self, servable, signature: str, inputs: Mapping[str, np.ndarray]
          ) -> Dict[str, np.ndarray]:
    """The signature's outputs for these (validated) inputs, run in a batch when
    they can be; blocks until they are ready. Raises what the run raised."""
    rows = rows_of(inputs) if inputs else None
    if not rows or rows >= self.config.max_batch_size:
      return self._run(servable, signature, inputs)
    task = _Task(inputs, rows)
    self._enqueue(servable, signature, task)
    task.done.wait()
    if task.error is not None:
      raise task.error
    return task.outputs

  def _enqueue(self, servable, signature: str, task: _Task):
    # Imported here: serving.errors brings grpc, and `eta serve`'s parser imports this module.
    from serving.errors import unavailable  # pylint: disable=g-import-not-at-top
    key = (id(servable), signature)
    with self._cond:
      if self._stopping:
        raise unavailable("the server is shutting down")
      batch = self._open.get(key)
      if batch is not None and batch.rows + task.rows > self.config.max_batch_size:
        self._ready.append(self._open.pop(key))
        batch = None
      if batch is None:
        if len(self._ready) >= self.config.max_enqueued_batches:
          raise unavailable(f"the batch queue is full ({self.config.max_enqueued_batches} "
                            "batches wait for a thread); retry")
        batch = _Batch(servable, signature, time.monotonic() + self._timeout)
        self._open[key] = batch
      batch.tasks.append(task)
      batch.rows += task.rows
      if batch.rows >= self.config.max_batch_size:
        self._ready.append(self._open.pop(key))
      self._cond.notify_all()

  # --- batch threads ----------------------------------------------------------

  def _next_batch(self) -> Optional[_Batch]:
    with self._cond:
      while True:
        if self._ready:
          return self._ready.popleft()
        if self._open:
          key, batch = min(self._open.items(), key=lambda item: item[1].deadline)
          wait = batch.deadline - time.monotonic()
          if wait <= 0 or self._stopping:
            return self._open.pop(key)
          self._cond.wait(wait)
        elif self._stopping:
          return None
        else:
          self._cond.wait()

  def _work(self):
    while True:
      batch = self._next_batch()
      if batch is None:
        return
      try:
        self._execute(batch)
      except BaseException as error:  # pylint: disable=broad-except  (never strand a request)
        log.exception("batch of %d requests failed unexpectedly", len(batch.tasks))
        for task in batch.tasks:
          if not task.done.is_set():
            task.finish(error=error)

  def _execute(self, batch: _Batch):
    tasks = batch.tasks
    with self._cond:
      self.batches_run += 1
      self.requests_batched += len(tasks)
    if len(tasks) == 1:
      self._run_alone(batch, tasks[0])
      return
    names = list(tasks[0].inputs)
    if any(list(task.inputs) != names for task in tasks):
      for task in tasks:  # cannot happen after validation; run them as they are
        self._run_alone(batch, task)
      return
    merged = {name: np.concatenate([task.inputs[name] for task in tasks]) for name in names}
    try:
      outputs = self._run(batch.servable, batch.signature, merged)
    except Exception as error:  # pylint: disable=broad-except
      log.info("a batch of %d requests to '%s' failed (%s: %s); running them one by one",
               len(tasks), batch.signature, type(error).__name__,
               str(error).strip().splitlines()[0][:200] if str(error).strip() else "")
      for task in tasks:
        self._run_alone(batch, task)
      return
    if any(np.ndim(value) == 0 or len(value) != batch.rows for value in outputs.values()):
      log.warning("signature '%s' does not return one row per example; running the batch's "
                  "requests one by one", batch.signature)
      for task in tasks:
        self._run_alone(batch, task)
      return
    start = 0
    for task in tasks:
      end = start + task.rows
      task.finish({name: value[start:end] for name, value in outputs.items()})
      start = end

  def _run_alone(self, batch: _Batch, task: _Task):
    try:
      task.finish(self._run(batch.servable, batch.signature, task.inputs))
    except Exception as error:  # pylint: disable=broad-except  (the request's own failure)
      task.finish(error=error)
