"""The command line: `python -m recbole_hnlm`, a `--help` without torch or RecBole, RecBole's tune flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_hnlm.cli import SUBCOMMANDS, build_parser

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "recbole", "ray")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def _imported(importtime: str) -> set[str]:
    """Top-level packages named in ``python -X importtime`` output."""
    names = set()
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["tune", "--help"], ["infer", "--help"]])
def test_module_help_imports_neither_torch_nor_recbole(argv, tmp_path):
    done = _run(["-X", "importtime", "-m", "recbole_hnlm", *argv], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: recbole-hnlm" in done.stdout
    assert not _imported(done.stderr) & set(HEAVY)


def test_console_script_help_leaves_heavy_modules_out_of_sys_modules(tmp_path):
    """The console script (a file named recbole-hnlm importing cli.main), checked through sys.modules."""
    script = tmp_path / "recbole-hnlm"
    script.write_text(
        "import json, sys\n"
        "from recbole_hnlm.cli import main\n"
        "for argv in (['--help'], *[[name, '--help'] for name in sys.argv[1:]]):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = _run([str(script), *SUBCOMMANDS], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_cli_module_runs_as_a_script(tmp_path):
    """`python -m recbole_hnlm.cli tune` used to exit 0 doing nothing."""
    done = _run(["-m", "recbole_hnlm.cli", "tune", "--help"], tmp_path)
    assert done.returncode == 0
    assert "--params_file" in done.stdout
    missing = _run(["-m", "recbole_hnlm.cli", "tune"], tmp_path)
    assert missing.returncode == 2
    assert "--params" in missing.stderr


def test_every_subcommand_parses_its_minimal_arguments():
    required = {"tune": ["--params", "mf"], "prepare": ["--dataset", "toys", "--raw", "toys.json"]}
    for name in SUBCOMMANDS:
        args = build_parser(name).parse_args([name, *required.get(name, [])])
        assert args.command == name


def test_tune_accepts_recbole_spellings():
    parser = build_parser("tune")
    args = parser.parse_args(["tune", "--params_file", "lightgcn", "--tool", "Hyperopt"])
    assert (args.params, args.tool) == ("lightgcn", "hyperopt")
    args = parser.parse_args(["tune", "--params", "mf", "--tool", "Ray"])
    assert (args.params, args.tool) == ("mf", "ray")
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "--params", "mf", "--tool", "optuna"])
