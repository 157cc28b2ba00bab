"""TF Serving's REST API on http.server (one thread per connection, bounded).

  POST /v1/models/NAME[/versions/N]:predict   {"instances": ...} | {"inputs": ...}
  GET  /v1/models/NAME[/versions/N]           version status
  GET  /v1/models/NAME[/versions/N]/metadata  signature defs

Errors are {"error": "..."} with TF Serving's HTTP status for the gRPC code
(400 bad request, 404 unknown model/version/signature, 413 body over
--max-message-mb, 503 no version loaded yet or server busy).
"""

import contextlib
import http.server
import json
import logging
import re
import socket
import threading
from typing import Any, Dict, Optional, Tuple

import grpc
from google.protobuf import json_format

from serving import json_codec, protos
from serving.core import ServingCore
from serving.errors import ServingError, invalid_argument, not_found, unavailable

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                   r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?P<action>/metadata|:[A-Za-z]+)?/?$")

# A connection that sends nothing for this long is closed, so slow clients
# cannot hold handler threads forever.
_IDLE_SECONDS = 30


def _message_dict(message) -> Dict[str, Any]:
  return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                   including_default_value_fields=True)


class _Handler(http.server.BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"
  server_version = "eta-serving"
  timeout = _IDLE_SECONDS
  server: "RestServer._HttpServer"

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    log.debug("%s %s", self.address_string(), format % args)

  def do_GET(self):
    self._respond("GET")

  def do_POST(self):
    self._respond("POST")

  def do_PUT(self):
    self._respond("PUT")

  def do_DELETE(self):
    self._respond("DELETE")

  def _respond(self, method: str):
    try:
      status, body = self._route(method)
    except ServingError as error:
      status, body = error.http_status, {"error": error.message}
    except Exception as error:  # pylint: disable=broad-except
      log.exception("REST %s %s failed", method, self.path)
      status, body = 500, {"error": f"{type(error).__name__}: {error}"}
    payload = json.dumps(body).encode("utf-8")
    try:
      self.send_response(status)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(payload)))
      if self.close_connection:
        self.send_header("Connection", "close")
      self.end_headers()
      self.wfile.write(payload)
    except OSError:  # the client went away
      self.close_connection = True

  def _route(self, method: str) -> Tuple[int, Dict[str, Any]]:
    match = _PATH.match(self.path.split("?", 1)[0])
    if not match:
      self._drain()
      raise not_found(f"no such resource {self.path!r}; expected "
                      "/v1/models/NAME[/versions/N][:predict|/metadata]")
    core: ServingCore = self.server.core
    if match["label"] is not None:
      self._drain()
      raise not_found(f"version label '{match['label']}' is unknown; this server has no "
                      "version labels")
    version = _parse_version(match["version"])
    action = match["action"] or ""
    if method == "GET" and action in ("", "/metadata"):
      self._drain()
      if action == "/metadata":
        served, defs = core.metadata(match["name"], version)
        response = protos.metadata_response(match["name"], served, defs)
        return 200, {"model_spec": _message_dict(response.model_spec),
                     "metadata": {protos.SIGNATURE_DEF: _message_dict(
                         protos.unpack_signature_defs(response))}}
      return 200, _message_dict(protos.status_response(core.status(match["name"], version)))
    if method == "POST" and action == ":predict":
      body = self._read_body(core.limits.max_message_bytes)
      with self.server.slot():
        return 200, self._predict(core, match["name"], version, body)
    self._drain()
    if method == "POST" and action in (":classify", ":regress"):
      raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                         f"{action[1:]} is not served over REST here; use :predict, or "
                         "Classify / Regress over gRPC")
    raise ServingError(grpc.StatusCode.UNIMPLEMENTED, f"{method} {self.path} is not supported")

  @staticmethod
  def _predict(core: ServingCore, name: str, version: Optional[int], body: bytes):
    parsed = json_codec.parse_body(body)
    form = []

    def decode(specs):
      request_form, inputs = json_codec.request_inputs(parsed, specs)
      form.append(request_form)
      return inputs

    result = core.predict(name, version, parsed.get("signature_name", ""), decode)
    return json_codec.response_body(form[0], result.outputs)

  def _content_length(self) -> int:
    text = self.headers.get("Content-Length")
    if text is None:
      return 0
    if not text.strip().isdigit():
      self.close_connection = True
      raise invalid_argument(f"bad Content-Length {text!r}")
    return int(text)

  def _drain(self):
    """Reads and drops a body the route does not use, so keep-alive stays in step."""
    length = self._content_length()
    if length > (1 << 20):
      self.close_connection = True
    elif length:
      self.rfile.read(length)

  def _read_body(self, limit: int) -> bytes:
    if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
      self.close_connection = True
      raise invalid_argument("chunked request bodies are not supported; send Content-Length")
    length = self._content_length()
    if length > limit:
      self.close_connection = True  # the unread body makes the connection unusable
      raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"the request body has {length} bytes, more than this server's "
                         f"limit of {limit} (--max-message-mb)")
    body = self.rfile.read(length)
    if len(body) != length:
      self.close_connection = True
      raise invalid_argument("the request body ended early")
    return body


def _parse_version(text: Optional[str]) -> Optional[int]:
  if text is None:
    return None
  if not text.isdigit():
    raise invalid_argument(f"version must be a non-negative integer, got {text!r}")
  return int(text)


class RestServer:
  """The REST API for one ServingCore on host:port (0 = any free port)."""

  class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, core: ServingCore, max_concurrent: int, ipv6: bool):
      self.address_family = socket.AF_INET6 if ipv6 else socket.AF_INET
      self.core = core
      self._slots = threading.BoundedSemaphore(max_concurrent)
      self._idle = threading.Condition()
      self.in_flight = 0
      super().__init__(address, _Handler)

    @contextlib.contextmanager
    def slot(self):
      """Bounds concurrent predictions (beyond that a request waits briefly, then
      503) and counts them, so stop() can let them finish."""
      if not self._slots.acquire(timeout=5.0):
        raise unavailable("the server is busy; retry")
      with self._idle:
        self.in_flight += 1
      try:
        yield
      finally:
        with self._idle:
          self.in_flight -= 1
          self._idle.notify_all()
        self._slots.release()

    def wait_idle(self, timeout: float) -> bool:
      with self._idle:
        return self._idle.wait_for(lambda: self.in_flight == 0, timeout)

  def __init__(self, core: ServingCore, host: str, port: int, max_concurrent: int = 32):
    self._server = self._HttpServer((host, port), core, max_concurrent, ":" in host)
    self._thread: Optional[threading.Thread] = None

  @property
  def port(self) -> int:
    return self._server.server_address[1]

  def start(self):
    self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
        "poll_interval": 0.2}, name="rest", daemon=True)
    self._thread.start()

  def stop(self, grace: float = 10.0):
    """Stops accepting; predictions in flight get up to `grace` seconds to finish."""
    self._server.shutdown()
    self._server.server_close()
    if not self._server.wait_idle(grace):
      log.warning("REST requests still running after %.0fs; stopping anyway", grace)
    if self._thread is not None:
      self._thread.join(timeout=5)
