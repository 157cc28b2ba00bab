"""ServingError: what went wrong, as a gRPC status code (and its HTTP status)."""

import grpc

# TF Serving's mapping of canonical codes to HTTP statuses, for the REST API.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# TF runtime error messages wrap the one useful line in graph-execution noise.
_NOISE_PREFIXES = ("Graph execution error", "Detected at node", "<stack traces",
                   "[[", "Op:__inference")


class ServingError(Exception):
  """A request failure the client is told about: a status code and a message."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message

  @property
  def http_status(self) -> int:
    return _HTTP_STATUS.get(self.code, 500)

  def __str__(self):
    return f"{self.code.name}: {self.message}"


def invalid_argument(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.NOT_FOUND, message)


def unavailable(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def _useful_lines(message: str) -> str:
  lines = [line.strip() for line in message.splitlines()]
  kept = [line for line in lines if line and not line.startswith(_NOISE_PREFIXES)]
  return "; ".join(kept) or message.strip()


def from_model_error(error: Exception) -> ServingError:
  """An exception raised while running a signature -> the status the client gets.

  The model's own input checks raise InvalidArgumentError (a bad request); TF
  fails with UnicodeDecodeError when its error message quotes undecodable input
  bytes, which is a bad request too. Anything else is the server's fault.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if isinstance(error, ServingError):
    return error
  if isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError)):
    return invalid_argument(f"the model rejected the input: {_useful_lines(error.message)}")
  if isinstance(error, UnicodeDecodeError):
    return invalid_argument("the model rejected the input (its error quoted undecodable bytes)")
  return ServingError(grpc.StatusCode.INTERNAL,
                      f"running the model failed: {type(error).__name__}: {error}")
