"""TF Serving's REST API on Tornado.

  POST /v1/models/NAME[/versions/N]:predict   {"instances": ...} | {"inputs": ...}
  GET  /v1/models/NAME[/versions/N]           version status
  GET  /v1/models/NAME[/versions/N]/metadata  signature defs

Errors are {"error": "..."} with TF Serving's HTTP status for the gRPC code
(400 bad request, 404 unknown model/version/signature, 413 body over
--max-message-mb, 503 no version loaded yet, server busy or shutting down).

Tornado does the HTTP: keep-alive, Content-Length and chunked request bodies,
idle and body timeouts. Its IOLoop (an asyncio loop) runs on one thread of its
own; predictions (JSON decoding, the model, JSON encoding) run on a bounded
thread pool, so the loop only moves bytes. Status and metadata are answered on
the loop: they only read the manager's state.

The body limit is checked as the body arrives. An oversize body of up to 1 MiB
over the limit is read, dropped and answered 413 (the connection stays usable:
closing one with unread bytes makes TCP reset it, which can lose the answer); a
larger one (by Content-Length, or once a chunked body passes that) is answered
413 at once and the connection is closed.
"""

import asyncio
import functools
import json
import logging
import re
import threading
from concurrent import futures
from typing import Any, Dict, List, Optional, Tuple

import grpc
import tornado.httpserver
import tornado.netutil
import tornado.web
from google.protobuf import json_format

from serving import json_codec, protos
from serving.core import ServingCore
from serving.errors import ServingError, invalid_argument, not_found, unavailable

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<action>/metadata|:[A-Za-z]+)?/?$")

# A connection that sends nothing for this long is closed, and so is one whose
# body takes longer than _BODY_SECONDS, so slow clients cannot hold connections.
_IDLE_SECONDS = 30
_BODY_SECONDS = 120
# Chunked bodies are counted by the handler, which answers 413 itself; Tornado's
# own limit (a bare 400) is lifted for them.
_UNBOUNDED = 1 << 62


def _message_dict(message) -> Dict[str, Any]:
  return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                   including_default_value_fields=True)


def _parse_version(text: Optional[str]) -> Optional[int]:
  if text is None:
    return None
  if not text.isdigit():
    raise invalid_argument(f"version must be a non-negative integer, got {text!r}")
  return int(text)


def _predict(core: ServingCore, name: str, version: Optional[int], body: bytes) -> bytes:
  """One :predict request, on a pool thread: JSON body in, JSON response out."""
  parsed = json_codec.parse_body(body)
  form = []

  def decode(specs):
    request_form, inputs = json_codec.request_inputs(parsed, specs)
    form.append(request_form)
    return inputs

  result = core.predict(name, version, parsed.get("signature_name", ""), decode)
  return json.dumps(json_codec.response_body(form[0], result.outputs)).encode("utf-8")


class _State:
  """What the handlers share. Touched on the IOLoop thread only, so no locks."""

  def __init__(self, core: ServingCore, max_concurrent: int):
    self.core = core
    self.max_concurrent = max_concurrent
    # At most max_concurrent predictions run at once; as many again may wait
    # for a thread; beyond that a prediction is answered 503 at once.
    self.pool = futures.ThreadPoolExecutor(max_workers=max_concurrent,
                                           thread_name_prefix="rest")
    self.in_flight = 0
    self.closing = False

  def admit(self):
    if self.closing:
      raise unavailable("the server is shutting down")
    if self.in_flight >= 2 * self.max_concurrent:
      raise unavailable("the server is busy; retry")


# Closing a connection whose request body is partly unread makes TCP reset it,
# which can destroy the answer before the client reads it; so an oversize body up
# to this many bytes over the limit is read and dropped first.
_DRAIN_BYTES = 1 << 20


@tornado.web.stream_request_body
class _Handler(tornado.web.RequestHandler):
  """Every path: routed by _PATH, so unknown ones get a JSON 404 too."""

  SUPPORTED_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")  # others: 405

  def initialize(self, state: _State):  # pylint: disable=arguments-differ
    self._state = state
    self._limit = state.core.limits.max_message_bytes
    self._chunks: List[bytes] = []
    self._received = 0
    self._oversize = False  # the body is over the limit: read, dropped, then 413

  def set_default_headers(self):
    self.set_header("Content-Type", "application/json")
    self.set_header("Server", "eta-serving")

  def compute_etag(self):
    return None  # answers change as versions load; no ETag / 304

  def _reply(self, status: int, body):
    if self._finished:
      return
    self.set_status(status)
    self.finish(body if isinstance(body, bytes) else json.dumps(body).encode("utf-8"))

  def _too_large(self, length: Optional[int], close: bool):
    size = f"has {length} bytes" if length is not None else "is"
    error = ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"the request body {size} more than this server's limit of "
                         f"{self._limit} bytes (--max-message-mb)")
    self._chunks = []
    if close:
      # Tornado closes the connection after this answer (the body is left unread),
      # but decides so only after the headers are written: tell the client.
      self.set_header("Connection", "close")
    self._reply(error.http_status, {"error": error.message})

  def prepare(self):
    length = self.request.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > self._limit:
      # Lifting Tornado's limit to the declared length keeps it from answering
      # its own 400. A body at most _DRAIN_BYTES over the limit is read and
      # dropped, then answered (the connection stays usable); a larger one is
      # answered at once and the connection closed, its body unread.
      self.request.connection.set_max_body_size(int(length))
      self._oversize = True
      if int(length) > self._limit + _DRAIN_BYTES:
        self._too_large(int(length), close=True)
    elif length is None:
      self.request.connection.set_max_body_size(_UNBOUNDED)  # chunked: counted below

  def data_received(self, chunk: bytes):
    if self._finished:
      return
    self._received += len(chunk)
    if self._received > self._limit + _DRAIN_BYTES:
      self._too_large(None, close=True)
    elif self._received > self._limit or self._oversize:
      self._oversize, self._chunks = True, []  # drop the rest; 413 when it has arrived
    else:
      self._chunks.append(chunk)

  def write_error(self, status_code: int, **kwargs):
    """Tornado's own errors (405, ...) as JSON too."""
    self.finish(json.dumps({"error": self._reason}).encode("utf-8"))

  def log_exception(self, typ, value, tb):
    if not isinstance(value, tornado.web.HTTPError):
      log.error("REST %s %s failed", self.request.method, self.request.uri,
                exc_info=(typ, value, tb))

  async def get(self):
    await self._respond("GET")

  async def post(self):
    await self._respond("POST")

  async def put(self):
    await self._respond("PUT")

  async def delete(self):
    await self._respond("DELETE")

  async def patch(self):
    await self._respond("PATCH")

  async def _respond(self, method: str):
    if self._finished:  # already answered 413 while the body arrived
      return
    if self._oversize:  # the whole oversize body was read and dropped
      length = self.request.headers.get("Content-Length")
      self._too_large(int(length) if length else None, close=False)
      return
    try:
      status, body = await self._route(method)
    except ServingError as error:
      status, body = error.http_status, {"error": error.message}
    except Exception as error:  # pylint: disable=broad-except
      log.exception("REST %s %s failed", method, self.request.uri)
      status, body = 500, {"error": f"{type(error).__name__}: {error}"}
    self._reply(status, body)

  async def _route(self, method: str) -> Tuple[int, Any]:
    path = self.request.path
    match = _PATH.match(path)
    if not match:
      raise not_found(f"no such resource {path!r}; expected "
                      "/v1/models/NAME[/versions/N][:predict|/metadata]")
    if match["label"] is not None:
      raise not_found(f"version label '{match['label']}' is unknown; this server has no "
                      "version labels")
    core = self._state.core
    version = _parse_version(match["version"])
    action = match["action"] or ""
    if method == "GET" and action == "/metadata":
      served, defs = core.metadata(match["name"], version)
      response = protos.metadata_response(match["name"], served, defs)
      return 200, {"model_spec": _message_dict(response.model_spec),
                   "metadata": {protos.SIGNATURE_DEF: _message_dict(
                       protos.unpack_signature_defs(response))}}
    if method == "GET" and action == "":
      return 200, _message_dict(protos.status_response(core.status(match["name"], version)))
    if method == "POST" and action == ":predict":
      return 200, await self._predict(match["name"], version)
    if method == "POST" and action in (":classify", ":regress"):
      raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                         f"{action[1:]} is not served over REST here; use :predict, or "
                         "Classify / Regress over gRPC")
    raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"{method} {path} is not supported")

  async def _predict(self, name: str, version: Optional[int]) -> bytes:
    state = self._state
    state.admit()
    body, self._chunks = b"".join(self._chunks), []
    state.in_flight += 1
    try:
      return await asyncio.get_running_loop().run_in_executor(
          state.pool, functools.partial(_predict, state.core, name, version, body))
    finally:
      state.in_flight -= 1


def _log_request(handler: tornado.web.RequestHandler):
  request = handler.request
  log.debug("%d %s %s (%s) %.1fms", handler.get_status(), request.method, request.uri,
            request.remote_ip, 1000.0 * request.request_time())


class RestServer:
  """The REST API for one ServingCore on host:port (0 = any free port).

  The port is bound on construction; start() runs the IOLoop on its own thread;
  stop(grace) stops accepting, lets predictions in flight finish for up to
  `grace` seconds (new requests on open connections get 503), then closes every
  connection.
  """

  def __init__(self, core: ServingCore, host: str, port: int, max_concurrent: int = 32):
    self._state = _State(core, max_concurrent)
    address = host.strip("[]")
    # "::" binds IPv4 too (Tornado's IPv6 sockets are IPv6-only), as gRPC's [::] does.
    self._sockets = tornado.netutil.bind_sockets(
        port, address=None if address == "::" else address, backlog=128)
    self._app = tornado.web.Application([(r".*", _Handler, {"state": self._state})],
                                        log_function=_log_request, compress_response=False)
    self._loop: Optional[asyncio.AbstractEventLoop] = None
    self._http: Optional[tornado.httpserver.HTTPServer] = None
    self._thread: Optional[threading.Thread] = None

  @property
  def port(self) -> int:
    return self._sockets[0].getsockname()[1]

  async def _listen(self):
    self._http = tornado.httpserver.HTTPServer(
        self._app, max_body_size=self._state.core.limits.max_message_bytes,
        idle_connection_timeout=_IDLE_SECONDS, body_timeout=_BODY_SECONDS)
    self._http.add_sockets(self._sockets)

  def start(self):
    ready = threading.Event()
    failure: List[BaseException] = []

    def run():
      loop = asyncio.new_event_loop()
      asyncio.set_event_loop(loop)
      try:
        loop.run_until_complete(self._listen())
      except BaseException as error:  # pylint: disable=broad-except
        failure.append(error)
        loop.close()
        ready.set()
        return
      self._loop = loop
      ready.set()
      try:
        loop.run_forever()
      finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    self._thread = threading.Thread(target=run, name="rest", daemon=True)
    self._thread.start()
    ready.wait()
    if failure:
      raise failure[0]

  async def _shutdown(self, grace: float):
    state = self._state
    state.closing = True
    self._http.stop()  # stops accepting; closes the listening sockets
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while state.in_flight and loop.time() < deadline:
      await asyncio.sleep(0.02)
    if state.in_flight:
      log.warning("REST requests still running after %gs; stopping anyway", grace)
    try:
      await asyncio.wait_for(self._http.close_all_connections(), timeout=5)
    except asyncio.TimeoutError:
      log.warning("REST connections did not close within 5s")

  def stop(self, grace: float = 10.0):
    """Stops accepting; predictions in flight get up to `grace` seconds to finish."""
    loop = self._loop
    if loop is None:  # never started
      for sock in self._sockets:
        sock.close()
    else:
      try:
        asyncio.run_coroutine_threadsafe(self._shutdown(grace), loop).result(grace + 10)
      except Exception:  # pylint: disable=broad-except
        log.exception("REST shutdown failed")
      loop.call_soon_threadsafe(loop.stop)
      self._thread.join(timeout=5)
      self._loop = None
    self._state.pool.shutdown(wait=False, cancel_futures=True)
