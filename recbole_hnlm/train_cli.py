"""``recbole-hnlm train`` / ``run_hnlm.py``: train and evaluate one model.

The parser imports neither torch nor RecBole (``--help`` stays fast); ``run`` imports the training code.
"""

from __future__ import annotations

import argparse

from recbole_hnlm import methods


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default="LightGCN", help="MF/BPR, LightGCN, NGCF, SGL, SimGCL (or HNLM*)"
    )
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (ml-100k is embedded)")
    parser.add_argument(
        "--sampler",
        default="hnlm",
        choices=methods.names(),
        metavar="SAMPLER",
        help=(
            f"where the negatives come from: {', '.join(methods.names())} (recbole_hnlm/methods.py; "
            f"hnlm: the default semantic design, {methods.DEFAULT_DESIGN} at M = hnlm_candidates)"
        ),
    )
    parser.add_argument("--negatives", default=None, help="a semantic-negative store folder")
    parser.add_argument(
        "--config_files", default=None, help="RecBole yaml config files, space separated (later files win)"
    )
    ddp = parser.add_argument_group("distributed training (RecBole DDP: NCCL on GPUs, gloo on CPUs)")
    ddp.add_argument("--nproc", type=int, default=1, help="processes (GPUs) on this machine")
    ddp.add_argument("--world_size", type=int, default=-1, help="processes on all machines (-1: nproc)")
    ddp.add_argument("--ip", default="localhost", help="address of the machine holding global rank 0")
    ddp.add_argument("--port", type=int, default=None, help="rendezvous port (default: free port / 5678)")
    ddp.add_argument(
        "--group_offset", type=int, default=0, help="global rank of this machine's first process"
    )
    parser.epilog = "Any other --key=value is a RecBole/plugin config override, e.g. --epochs=2."


def run(args: argparse.Namespace) -> int:
    from recbole_hnlm.distributed import DDPOptions
    from recbole_hnlm.quick_start import run_hnlm

    run_hnlm(
        model=args.model,
        dataset=args.dataset,
        sampler=args.sampler,
        negatives=args.negatives,
        config_file_list=args.config_files.split() if args.config_files else None,
        config_dict=args.overrides,
        ddp=DDPOptions(args.nproc, args.world_size, args.ip, args.port, args.group_offset),
    )
    return 0
