"""The ``recbole-hnlm`` command line. ``run_hnlm.py`` is ``recbole-hnlm train``.

Each subcommand lives in the module of its concern and exposes ``configure_parser(parser)`` and
``run(args) -> int``; this file only dispatches (modules are imported lazily, so ``--help`` is fast and a
missing optional dependency only affects its own subcommand).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("recbole_hnlm.train_cli", "train and evaluate a model (HNLMRec or a bundled baseline)"),
    "prepare": ("recbole_hnlm.data.prepare", "convert raw Amazon/Yelp dumps into RecBole atomic files"),
    "profiles": ("recbole_hnlm.stages.profiles", "stage 1: LLM-written user and item profiles"),
    "negatives": ("recbole_hnlm.stages.prompt_negatives", "stage 2: prompt-only LLM hard negatives -> store"),
    "finetune": ("recbole_hnlm.stages.finetune", "stage 3: CF-supervised LoRA fine-tuning of the embedder"),
    "infer": ("recbole_hnlm.stages.inference", "stage 3: embed every training interaction -> store"),
    "bench": ("recbole_hnlm.bench.harness", "benchmark grid: samplers x models x seeds, tables and plots"),
    "tune": ("recbole_hnlm.tune", "hyper-parameter search with Ray Tune or hyperopt"),
}


def build_parser(available: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recbole-hnlm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in available.items():
        module = importlib.import_module(module_name)
        module.configure_parser(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _available(command: str | None) -> dict[str, tuple[str, str]]:
    """The subcommands whose module exists (only the requested one is imported for a run)."""
    names = [command] if command in SUBCOMMANDS else list(SUBCOMMANDS)
    found = {}
    for name in names:
        module_name = SUBCOMMANDS[name][0]
        if importlib.util.find_spec(module_name) is not None:
            found[name] = SUBCOMMANDS[name]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    parser = build_parser(_available(command))
    args, extra = parser.parse_known_args(argv)
    args.overrides = parse_overrides(extra, parser)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return int(module.run(args) or 0)


def parse_overrides(extra: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    """RecBole-style ``--key=value`` overrides (values are evaluated by RecBole's Config, as in RecBole)."""
    overrides: dict[str, str] = {}
    for arg in extra:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognised argument {arg!r}: config overrides are written --key=value")
        key, value = arg[2:].split("=", 1)
        overrides[key] = value
    return overrides
