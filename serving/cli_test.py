"""`serve` and `predict` as subcommands: parsing, backend choice, a real round trip,
and a clean exit on SIGINT even when started with SIGINT ignored."""

import argparse
import json
import os
import signal
import subprocess
import sys

import pytest

from serving import cli, model_server
from serving import server as server_lib
from serving.testing import output_lines

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(argv):
  parser = argparse.ArgumentParser(prog="eta")
  cli.add_commands(parser.add_subparsers(dest="command", required=True))
  return parser.parse_known_args(argv)


def test_add_commands_parses_both_commands():
  args, extra = _parse(["serve", "--model-dir", "/m", "--max-candidates", "10"])
  assert args.handler is cli.cmd_serve and extra == []
  assert (args.host, args.grpc_port, args.rest_port, args.model_name) == (
      "127.0.0.1", 8500, 8501, "eta")
  config = cli.server_config(args)
  assert config.limits.max_candidates == 10 and config.limits.max_message_bytes == 64 << 20
  args, _ = _parse(["predict", "--history-file", "h.json", "--candidates", "a:b"])
  assert args.handler is cli.cmd_predict and args.server == "localhost:8500"
  assert cli.cmd_serve(*_parse(["serve", "--model-dir", "/m", "--beam-flag"])) == 2


def test_batching_and_thread_flags_reach_the_server_config():
  args, _ = _parse(["serve", "--model-dir", "/m"])
  config = cli.server_config(args)
  assert config.batching is None  # off by default
  assert (config.intra_op_threads, config.inter_op_threads) == (0, 0)
  args, _ = _parse(["serve", "--model-dir", "/m", "--enable-batching", "--max-batch-size", "32",
                    "--batch-timeout-micros", "500", "--num-batch-threads", "2",
                    "--max-enqueued-batches", "8", "--intra-op-threads", "1",
                    "--inter-op-threads", "2"])
  config = cli.server_config(args)
  assert config.batching.parameters() == {"max_batch_size": 32, "batch_timeout_micros": 500,
                                          "max_enqueued_batches": 8, "num_batch_threads": 2}
  assert config.batching.signatures == ("serving_default",)
  assert (config.intra_op_threads, config.inter_op_threads) == (1, 2)
  argv = model_server.command("tfms", config, {"models.config": "m", "batching.config": "b"})
  assert "--enable_batching=true" in argv and "--batching_parameters_file=b" in argv
  assert "--tensorflow_intra_op_parallelism=1" in argv
  assert "--tensorflow_inter_op_parallelism=2" in argv
  for bad in (["--max-batch-size", "0"], ["--batch-timeout-micros", "-1"],
              ["--num-batch-threads", "0"], ["--intra-op-threads", "-1"]):
    args, _ = _parse(["serve", "--model-dir", "/m", "--enable-batching"] + bad)
    with pytest.raises(ValueError, match=bad[0]):
      cli.server_config(args)


def test_real_binary_is_exec_d_only_when_it_can_bind_as_asked(monkeypatch, tmp_path, capsys):
  calls = {}

  def builtin(config, announce):
    calls["builtin"] = config
    return 0

  monkeypatch.setattr(model_server, "find_binary", lambda: "/opt/tfs/tensorflow_model_server")
  monkeypatch.setattr(model_server, "exec_binary", lambda argv: calls.setdefault("exec", argv))
  monkeypatch.setattr(server_lib, "serve", builtin)
  args = ["serve", "--model-dir", str(tmp_path), "--config-dir", str(tmp_path / "cfg")]
  cli.cmd_serve(*_parse(args + ["--host", "0.0.0.0", "--enable-batching"]))
  argv = calls.pop("exec")
  assert argv[0] == "/opt/tfs/tensorflow_model_server"
  assert f"--model_config_file={tmp_path / 'cfg' / 'models.config'}" in argv
  assert "--enable_batching=true" in argv
  assert "exec /opt/tfs/tensorflow_model_server" in capsys.readouterr().out
  # On 127.0.0.1 the binary (which listens everywhere) is passed over ...
  assert cli.cmd_serve(*_parse(args)) == 0
  assert calls.pop("builtin").host == "127.0.0.1" and "exec" not in calls
  # ... and asking for it explicitly is an error, not a silent exposure.
  assert cli.cmd_serve(*_parse(args + ["--backend", "tensorflow_model_server"])) == 2
  assert "--host 0.0.0.0" in capsys.readouterr().err


def test_predict_prints_ranked_candidates_with_retrieved_behaviours(server, tmp_path, capsys):
  history = tmp_path / "user.json"
  history.write_text(json.dumps({
      "history": [{"item_id": "h1", "category": "c1", "timestamp": 80},
                  {"item_id": "h2", "category": "c2", "timestamp": 90}],
      "candidates": ["i1:c1", "i2:c2", "i3:c3"], "request_time": 100}))
  base = ["predict", "--server", server.grpc_target, "--history-file", str(history)]
  assert cli.cmd_predict(*_parse(base)) == 0
  out = capsys.readouterr().out
  assert "model 'eta' version 1, signature score: 3 candidates, history of 2" in out
  assert "retrieved: #0 h2/c2 (d=0), #1 h1/c1 (d=1)" in out
  assert cli.cmd_predict(*_parse(base + ["--json", "--signature", "serving_default"])) == 0
  ranking = json.loads(capsys.readouterr().out)["ranking"]
  assert len(ranking) == 3 and ranking[0]["probability"] >= ranking[-1]["probability"]
  assert cli.cmd_predict(*_parse(base + ["--request-time", "85"])) == 1
  err = capsys.readouterr().err
  assert "INVALID_ARGUMENT" in err and "is not before request_time=85" in err


def test_serve_stops_cleanly_on_sigint_even_if_started_with_it_ignored(model_dir):
  process = subprocess.Popen(
      [sys.executable, "-m", "serving.cli", "serve", "--model-dir", model_dir,
       "--grpc-port", "0", "--rest-port", "0", "--poll-seconds", "0.2"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
  try:
    lines, seen = output_lines(process), []
    while not any("eta serve: model 'eta'" in line for line in seen):
      line = lines.get(timeout=60)
      assert line is not None, "".join(seen)
      seen.append(line)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    rest = []
    while (line := lines.get(timeout=10)) is not None:
      rest.append(line)
    assert "eta serve: stopped\n" in rest
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()


def test_importing_the_cli_does_not_import_tensorflow():
  code = ("import sys, serving.cli; "
          "print(sorted(m for m in ('tensorflow', 'grpc', 'tornado') if m in sys.modules))")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True, timeout=120)
  assert result.stdout.strip() == "[]", result.stderr
