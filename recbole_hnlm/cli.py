"""The ``recbole-hnlm`` command line (also ``python -m recbole_hnlm``); ``run_hnlm.py`` is ``train``.

Each subcommand names two functions: one that configures its argument parser, in a module that imports
neither torch nor RecBole, and one that runs it, imported only when the command runs. So ``--help`` and
``<command> --help`` are fast, and a missing optional dependency only affects its own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    help: str
    parser: str  # "module:function" that adds the command's arguments to its parser (light imports only)
    run: str  # "module:function" that runs the parsed command and returns the exit status
    needs_recbole: bool = True  # apply the compatibility shims and register the models before running


SUBCOMMANDS: dict[str, Command] = {
    "train": Command(
        "train and evaluate a model (HNLMRec or a bundled baseline)",
        "recbole_hnlm.train_cli:configure_parser",
        "recbole_hnlm.train_cli:run",
    ),
    "prepare": Command(
        "convert raw Amazon/Yelp dumps into RecBole atomic files",
        "recbole_hnlm.data.prepare:configure_parser",
        "recbole_hnlm.data.prepare:run",
        needs_recbole=False,
    ),
    "profiles": Command(
        "stage 1: LLM-written user and item profiles",
        "recbole_hnlm.stages.cli:configure_profiles",
        "recbole_hnlm.stages.profiles:run",
    ),
    "negatives": Command(
        "stage 2: prompt-only LLM hard negatives -> store",
        "recbole_hnlm.stages.cli:configure_negatives",
        "recbole_hnlm.stages.prompt_negatives:run",
    ),
    "finetune": Command(
        "stage 3: CF-supervised LoRA fine-tuning of the embedder",
        "recbole_hnlm.stages.cli:configure_finetune",
        "recbole_hnlm.stages.finetune:run",
    ),
    "infer": Command(
        "stage 3: embed every training interaction -> store",
        "recbole_hnlm.stages.cli:configure_infer",
        "recbole_hnlm.stages.inference_modes:run",
    ),
    "item-vectors": Command(
        "embed every item's text once (what the semdns, guarddns and aligndns samplers read)",
        "recbole_hnlm.stages.cli:configure_item_vectors",
        "recbole_hnlm.pipeline:run_item_vectors",
    ),
    "bench": Command(
        "benchmark grid: samplers x models x seeds, tables and plots",
        "recbole_hnlm.bench.harness:configure_parser",
        "recbole_hnlm.bench.harness:run",
    ),
    "tune": Command(
        "hyper-parameter search with Ray Tune or hyperopt (RecBole's run_hyper flags work too)",
        "recbole_hnlm.tune_cli:configure_parser",
        "recbole_hnlm.tune:run",
    ),
}


def _function(target: str) -> Callable[..., Any]:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s own arguments are configured (every command's with None)."""
    parser = argparse.ArgumentParser(prog="recbole-hnlm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, spec in SUBCOMMANDS.items():
        subparser = sub.add_parser(name, help=spec.help, description=spec.help)
        if command is None or name == command:
            _function(spec.parser)(subparser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else ""
    parser = build_parser(command)
    args, extra = parser.parse_known_args(argv)
    args.overrides = parse_overrides(extra, parser)
    spec = SUBCOMMANDS[args.command]
    if spec.needs_recbole:
        import recbole_hnlm

        recbole_hnlm.bootstrap()
    return int(_function(spec.run)(args) or 0)


def parse_overrides(extra: Sequence[str], parser: argparse.ArgumentParser) -> dict[str, str]:
    """RecBole-style ``--key=value`` overrides (values are evaluated by RecBole's Config, as in RecBole)."""
    overrides: dict[str, str] = {}
    for arg in extra:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognised argument {arg!r}: config overrides are written --key=value")
        key, value = arg[2:].split("=", 1)
        overrides[key] = value
    return overrides


if __name__ == "__main__":
    sys.exit(main())
