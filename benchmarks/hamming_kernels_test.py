"""Smoke test of the Hamming kernels benchmark (tiny shapes, in this process)."""

import pytest

from benchmarks import hamming_kernels


def test_smoke_checks_the_kernels_agree_and_prints_the_table(capsys, tmp_path):
  assert hamming_kernels.main(["--smoke", "--threads", "0",
                               "--json", str(tmp_path / "kernels.json")]) == 0
  table = capsys.readouterr().out
  assert "| B x C x L | k | bits | threads | old stock ms | new stock ms |" in table
  assert "| 1 x 256 x 520 | 4 | 64 | default |" in table  # the level path's shape
  assert "| 2 x 1 x 40 | 3 | 100 | default |" in table  # TopK's
  assert (tmp_path / "kernels.json").exists()


def test_help_and_bad_lists():
  with pytest.raises(SystemExit) as exit_info:
    hamming_kernels.main(["--help"])
  assert exit_info.value.code == 0
  with pytest.raises(SystemExit):
    hamming_kernels.main(["--lengths", "1024,abc"])
