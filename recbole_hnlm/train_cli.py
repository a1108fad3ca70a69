"""``recbole-hnlm train`` / ``run_hnlm.py``: train and evaluate one model."""

from __future__ import annotations

import argparse

from recbole_hnlm.quick_start import SAMPLERS, run_hnlm


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default="LightGCN", help="MF/BPR, LightGCN, NGCF, SGL, SimGCL (or HNLM*)"
    )
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (ml-100k is embedded)")
    parser.add_argument("--sampler", default="hnlm", choices=SAMPLERS, help="where the negatives come from")
    parser.add_argument("--negatives", default=None, help="a semantic-negative store folder")
    parser.add_argument(
        "--config_files", default=None, help="RecBole yaml config files, space separated (later files win)"
    )
    parser.epilog = "Any other --key=value is a RecBole/plugin config override, e.g. --epochs=2."


def run(args: argparse.Namespace) -> int:
    run_hnlm(
        model=args.model,
        dataset=args.dataset,
        sampler=args.sampler,
        negatives=args.negatives,
        config_file_list=args.config_files.split() if args.config_files else None,
        config_dict=args.overrides,
    )
    return 0
