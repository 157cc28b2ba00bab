"""`eta serve` and `eta predict`; add_commands(subparsers) plugs them into `eta`.

  eta serve   --model-dir DIR [--host 127.0.0.1] [--grpc-port 8500] [--rest-port 8501] ...
              [--enable-batching [--max-batch-size 256] [--batch-timeout-micros 2000]
               [--num-batch-threads 4] [--max-enqueued-batches 64]]
              [--intra-op-threads N] [--inter-op-threads N]
  eta predict --server localhost:8500 (--history-file F | --example-file F)
              [--feature NAME:ENTITY:KIND... | --features-file F] ...

Also runnable alone: python -m serving.cli serve|predict ...
"""

import argparse
import logging
import shlex
import sys
import tempfile
from typing import List, Optional

from eta_ctr import flags, runtime
from models import signatures
from serving.batching import BatchingConfig
from serving.limits import Limits

log = logging.getLogger(__name__)

BACKENDS = ("auto", "builtin", "tensorflow_model_server")


def _add_serve_arguments(parser: argparse.ArgumentParser):
  defaults = Limits()
  parser.add_argument("--model-dir", required=True,
                      help="the Pusher's serving directory (numeric version subdirectories); "
                           "a local path or gs://...")
  parser.add_argument("--model-name", default="eta")
  parser.add_argument("--host", default="127.0.0.1",
                      help="address to bind; 0.0.0.0 exposes the server on every interface")
  parser.add_argument("--grpc-port", type=int, default=8500, help="0: any free port")
  parser.add_argument("--rest-port", type=int, default=8501, help="0: no REST API")
  parser.add_argument("--poll-seconds", type=float, default=2.0,
                      help="how often to look for a new version")
  parser.add_argument("--max-candidates", type=int, default=defaults.max_candidates,
                      help="candidates per score request (and examples per batch)")
  parser.add_argument("--max-history", type=int, default=defaults.max_history,
                      help="behaviours in one request's history")
  parser.add_argument("--max-message-mb", type=int, default=defaults.max_message_bytes >> 20,
                      help="largest gRPC message / REST body")
  parser.add_argument("--allow-empty-history", action="store_true",
                      help="let `score` requests with an empty history through (cold start)")
  parser.add_argument("--workers", type=int, default=8, help="gRPC worker threads")
  parser.add_argument("--backend", choices=BACKENDS, default="auto",
                      help="auto: tensorflow_model_server when on PATH and --host is 0.0.0.0 "
                           "(it cannot bind one address), else the built-in server")
  batching = BatchingConfig()
  parser.add_argument("--enable-batching", action="store_true",
                      help="batch serving_default requests across clients, as TF Serving's "
                           "--enable_batching (the built-in server never batches `score`; "
                           "tensorflow_model_server batches every signature, which breaks "
                           "`score`: see serving/model_server.py)")
  parser.add_argument("--max-batch-size", type=int, default=batching.max_batch_size,
                      help="with --enable-batching: examples per batch")
  parser.add_argument("--batch-timeout-micros", type=int,
                      default=batching.batch_timeout_micros,
                      help="with --enable-batching: longest wait for a batch to fill")
  parser.add_argument("--num-batch-threads", type=int, default=batching.num_batch_threads,
                      help="with --enable-batching: batches run at once")
  parser.add_argument("--max-enqueued-batches", type=int,
                      default=batching.max_enqueued_batches,
                      help="with --enable-batching: full batches that may wait for a thread "
                           "(beyond that, UNAVAILABLE)")
  parser.add_argument("--intra-op-threads", type=int, default=0,
                      help="TensorFlow's intra-op threads (0: its default, every core)")
  parser.add_argument("--inter-op-threads", type=int, default=0,
                      help="TensorFlow's inter-op threads (0: its default)")
  parser.add_argument("--config-dir", help="where to write models.config and batching.config "
                                           "for tensorflow_model_server (default: a temp dir)")


def _add_predict_arguments(parser: argparse.ArgumentParser):
  parser.add_argument("--server", default="localhost:8500", help="gRPC host:port")
  parser.add_argument("--model-name", default="eta")
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--history-file", help="JSON: one user's history (and candidates); "
                                             "see serving/requests.py")
  source.add_argument("--example-file",
                      help="tf.Examples: TFRecord (.gz gzipped) or JSONL; with --signature "
                           "score, the first example's history and every example's item")
  parser.add_argument("--candidates", help="item:category,... (replaces the file's)")
  parser.add_argument("--request-time", type=int,
                      help="unix seconds (default: the file's, else now)")
  parser.add_argument("--signature", choices=(signatures.SCORE_SIGNATURE,
                                              signatures.DEFAULT_SIGNATURE),
                      help="default: score for --history-file, serving_default for "
                           "--example-file")
  parser.add_argument("--limit", type=int, default=64, help="examples read from --example-file")
  parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
  parser.add_argument("--max-message-mb", type=int, default=64)
  parser.add_argument("--json", action="store_true", help="print the ranking as JSON")
  flags.add_feature_args(parser, "side features: declare the served model's features as for "
                                 "`eta run`, so the request carries their values from the "
                                 "files")


def server_config(args):
  from serving.server import ServerConfig  # pylint: disable=g-import-not-at-top
  for name in ("max_candidates", "max_history", "max_message_mb", "workers"):
    if getattr(args, name) < 1:
      raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
  if args.poll_seconds <= 0:
    raise ValueError("--poll-seconds must be positive")
  for name in ("intra_op_threads", "inter_op_threads"):
    if getattr(args, name) < 0:
      raise ValueError(f"--{name.replace('_', '-')} must be 0 (TensorFlow's default) or more")
  limits = Limits(max_candidates=args.max_candidates, max_history=args.max_history,
                  max_message_bytes=args.max_message_mb << 20,
                  allow_empty_history=args.allow_empty_history)
  batching = None
  if args.enable_batching:
    try:
      batching = BatchingConfig(max_batch_size=args.max_batch_size,
                                batch_timeout_micros=args.batch_timeout_micros,
                                num_batch_threads=args.num_batch_threads,
                                max_enqueued_batches=args.max_enqueued_batches)
    except ValueError as error:  # "max_batch_size must be at least 1, ..." -> the flag's name
      raise ValueError(f"--{str(error).replace('_', '-')}") from None
  return ServerConfig(model_dir=args.model_dir, model_name=args.model_name, host=args.host,
                      grpc_port=args.grpc_port, rest_port=args.rest_port or None,
                      poll_seconds=args.poll_seconds, limits=limits, workers=args.workers,
                      batching=batching, intra_op_threads=args.intra_op_threads,
                      inter_op_threads=args.inter_op_threads)


def _choose_binary(args) -> Optional[str]:
  """The tensorflow_model_server to exec, or None for the built-in server."""
  from serving import model_server  # pylint: disable=g-import-not-at-top
  if args.backend == "builtin":
    return None
  binary = model_server.find_binary()
  if binary is None:
    if args.backend == model_server.BINARY:
      raise ValueError(f"{model_server.BINARY} is not on PATH")
    return None
  if not model_server.binds_every_interface(args.host):
    if args.backend == model_server.BINARY:
      raise ValueError(f"{model_server.BINARY} always listens on every interface; pass "
                       "--host 0.0.0.0 to accept that")
    log.info("%s is on PATH but cannot bind to %s alone; using the built-in server "
             "(--host 0.0.0.0 to use it)", model_server.BINARY, args.host)
    return None
  return binary


def _unexpected(command: str, extra_args: List[str]) -> int:
  print(f"eta {command}: unrecognised arguments: {' '.join(extra_args)}", file=sys.stderr)
  return 2


def cmd_serve(args, extra_args: List[str]) -> int:
  if extra_args:
    return _unexpected("serve", extra_args)
  try:
    config = server_config(args)
    binary = _choose_binary(args)
  except ValueError as error:
    print(f"eta serve: {error}", file=sys.stderr)
    return 2
  if binary is not None:
    from serving import model_server  # pylint: disable=g-import-not-at-top
    paths = model_server.write_config_files(
        config, args.config_dir or tempfile.mkdtemp(prefix="eta-serve-"))
    argv = model_server.command(binary, config, paths)
    if args.max_candidates != Limits.max_candidates or args.max_history != Limits.max_history:
      log.warning("%s does not enforce --max-candidates / --max-history", model_server.BINARY)
    print("eta serve: exec " + " ".join(shlex.quote(a) for a in argv), flush=True)
    model_server.exec_binary(argv)
    return 1  # exec_binary does not return
  from serving import server  # pylint: disable=g-import-not-at-top
  server.configure_threads(config.intra_op_threads, config.inter_op_threads)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.isdir(config.model_dir):
    print(f"eta serve: --model-dir {config.model_dir} is not a directory", file=sys.stderr)
    return 2
  try:
    return server.serve(config, announce=lambda line: print(line, flush=True))
  except OSError as error:
    print(f"eta serve: {error}", file=sys.stderr)
    return 1


def cmd_predict(args, extra_args: List[str]) -> int:
  if extra_args:
    return _unexpected("predict", extra_args)
  from serving import client  # pylint: disable=g-import-not-at-top
  return client.run(args)


def add_commands(subparsers) -> None:
  """Adds `serve` and `predict` to an argparse subparsers object; each parser's
  `handler` default is fn(args, extra_args) -> exit code."""
  serve = subparsers.add_parser(
      "serve", help="serve the pushed model over TF Serving's gRPC and REST APIs")
  _add_serve_arguments(serve)
  serve.set_defaults(handler=cmd_serve)
  predict = subparsers.add_parser(
      "predict", help="score candidates for one user's history on a running server")
  _add_predict_arguments(predict)
  predict.set_defaults(handler=cmd_predict)


def main(argv: Optional[List[str]] = None) -> int:
  """`python -m serving.cli`: TensorFlow's environment first (eta_ctr/runtime.py)."""
  runtime.prepare()
  parser = argparse.ArgumentParser(prog="python -m serving.cli")
  add_commands(parser.add_subparsers(dest="command", required=True))
  args, extra = parser.parse_known_args(argv)
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: "
                      "%(message)s", datefmt="%H:%M:%S")
  logging.getLogger("serving").setLevel(logging.INFO)
  return args.handler(args, extra)


if __name__ == "__main__":
  sys.exit(main())
