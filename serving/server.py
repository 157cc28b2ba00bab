"""The built-in model server: gRPC + REST over one ModelManager, and its lifecycle.

Threading: gRPC requests run on a bounded thread pool (`workers`); with
batching on, requests to a batched signature wait there while one of the
batcher's threads runs their batch (serving/batching.py); REST
connections on Tornado's IOLoop thread, its predictions on a bounded thread pool
(4 x workers); the model poller on one daemon thread; TF releases the GIL while a signature runs,
so requests overlap. `serve` blocks the main thread until SIGTERM or SIGINT
(handlers are installed explicitly: a process started in the background
inherits SIGINT ignored), then stops taking requests, lets in-flight ones
finish (up to the grace period) and exits 0.
"""

import concurrent.futures
import dataclasses
import logging
import signal
import threading
from typing import Callable, Optional

import grpc

from serving import grpc_service
from serving.batching import Batcher, BatchingConfig
from serving.core import ServingCore
from serving.manager import ModelManager
from serving.rest import RestServer
from serving.limits import Limits

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerConfig:
  model_dir: str
  model_name: str = "eta"
  host: str = "127.0.0.1"
  grpc_port: int = 8500              # 0: any free port
  rest_port: Optional[int] = 8501    # None: no REST API; 0: any free port
  poll_seconds: float = 2.0
  limits: Limits = Limits()
  workers: int = 8
  warm: bool = True
  grace_seconds: float = 10.0
  batching: Optional[BatchingConfig] = None  # None: every request runs on its own
  intra_op_threads: int = 0          # TensorFlow's thread pools; 0: its default (all cores)
  inter_op_threads: int = 0


def configure_threads(intra_op: int, inter_op: int):
  """Sets TensorFlow's intra- and inter-op thread pools (0 keeps its default). Only
  possible before TensorFlow has run anything in this process: call it first."""
  if not intra_op and not inter_op:
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    if intra_op:
      tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op:
      tf.config.threading.set_inter_op_parallelism_threads(inter_op)
  except RuntimeError as error:  # TensorFlow already ran something in this process
    log.warning("cannot set TensorFlow's threads to %d intra-op / %d inter-op: %s",
                intra_op, inter_op, error)


def host_port(host: str, port: int) -> str:
  return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ModelServer:
  """gRPC and REST front ends on one model; start() / stop(), or a `with` block."""

  def __init__(self, config: ServerConfig, manager: Optional[ModelManager] = None):
    self.config = config
    self.manager = manager or ModelManager(config.model_dir, config.poll_seconds,
                                           warm=config.warm)
    self.batcher = Batcher(config.batching) if config.batching is not None else None
    self.core = ServingCore(config.model_name, self.manager, config.limits, self.batcher)
    self._grpc: Optional[grpc.Server] = None
    self._rest: Optional[RestServer] = None
    self.grpc_port: Optional[int] = None
    self.rest_port: Optional[int] = None

  def start(self, wait_seconds: Optional[float] = None) -> "ModelServer":
    """Binds both ports, starts polling; with wait_seconds, waits for a version."""
    config = self.config
    message_bytes = config.limits.max_message_bytes
    self._grpc = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=config.workers,
                                              thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", message_bytes),
                 ("grpc.max_send_message_length", message_bytes),
                 ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=config.workers * 16)
    grpc_service.add_services(self._grpc, self.core)
    address = host_port(config.host, config.grpc_port)
    try:
      self.grpc_port = self._grpc.add_insecure_port(address)
    except RuntimeError as error:
      raise OSError(f"cannot listen for gRPC on {address}: {error}") from None
    if not self.grpc_port:
      raise OSError(f"cannot listen for gRPC on {address}")
    if config.rest_port is not None:
      self._rest = RestServer(self.core, config.host, config.rest_port,
                              max_concurrent=config.workers * 4)
      self.rest_port = self._rest.port
    if self.batcher is not None:
      self.batcher.start()
    self.manager.start()
    self._grpc.start()
    if self._rest is not None:
      self._rest.start()
    if wait_seconds is not None and not self.manager.wait_until_available(wait_seconds):
      log.warning("no version of the model under %s after %.0fs; serving UNAVAILABLE until "
                  "one loads", config.model_dir, wait_seconds)
    return self

  @property
  def grpc_target(self) -> str:
    return host_port(self.config.host, self.grpc_port)

  @property
  def rest_url(self) -> Optional[str]:
    if self.rest_port is None:
      return None
    return f"http://{host_port(self.config.host, self.rest_port)}"

  def stop(self, grace: Optional[float] = None):
    """Stops accepting, lets in-flight requests finish (up to grace), unloads."""
    grace = self.config.grace_seconds if grace is None else grace
    grpc_stopped = self._grpc.stop(grace) if self._grpc is not None else None
    if self._rest is not None:
      self._rest.stop(grace)
      self._rest = None
    if grpc_stopped is not None:
      grpc_stopped.wait(grace + 1)
      self._grpc = None
    if self.batcher is not None:  # after the transports: their requests may wait on it
      self.batcher.stop()
    self.manager.stop()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.stop()


def serve(config: ServerConfig, announce: Callable[[str], None] = print) -> int:
  """Runs until SIGTERM / SIGINT; 0 on a clean stop. Call from the main thread."""
  stopping = threading.Event()
  signals = (signal.SIGTERM, signal.SIGINT)

  def on_signal(number, _frame):
    if stopping.is_set():
      raise SystemExit(128 + number)  # a second signal: stop waiting for in-flight work
    log.info("%s received; shutting down", signal.Signals(number).name)
    stopping.set()

  previous = {number: signal.signal(number, on_signal) for number in signals}
  server = ModelServer(config)
  try:
    server.start()
    rest = f", REST {server.rest_url}" if server.rest_url else ""
    announce(f"eta serve: model '{config.model_name}' from {config.model_dir} on gRPC "
             f"{server.grpc_target}{rest} (Ctrl-C or SIGTERM to stop)")
    while not stopping.wait(1.0):
      pass
  finally:
    server.stop()
    for number, handler in previous.items():
      signal.signal(number, handler)
  announce("eta serve: stopped")
  return 0
