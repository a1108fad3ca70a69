"""``recbole-hnlm prepare``: public raw dumps (Amazon 2014/2018/2023, Yelp) -> RecBole atomic files.

    recbole-hnlm prepare --dataset toys --out dataset/ \\
        --raw Toys_and_Games.json.gz meta_Toys_and_Games.json.gz

writes ``dataset/toys/toys.inter`` (user_id, item_id, rating, timestamp, review), ``toys.item`` (item
text), and ``toys.card.json`` / ``toys.card.md`` (sizes after each filter step, skipped-line counts and
a fingerprint of the inputs and filters). The filters default to the paper's for the dataset name
(``recbole_hnlm.data.datasets``) and can be overridden.
"""

from __future__ import annotations

import argparse
import sys

from recbole_hnlm.data.datasets import DATASETS, SOURCES

from .pipeline import PrepareConfig, prepare_dataset
from .readers import RawFormatError

__all__ = ["PrepareConfig", "RawFormatError", "configure_parser", "prepare_dataset", "run"]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    known = ", ".join(n for n, s in DATASETS.items() if s.source)
    parser.add_argument("--dataset", required=True, help=f"dataset name ({known}, or any name with --source)")
    parser.add_argument(
        "--raw", required=True, nargs="+", metavar="PATH", help="raw review + metadata files (gzip or plain)"
    )
    parser.add_argument("--out", default="dataset", help="files go to OUT/NAME/ (default: dataset)")
    parser.add_argument("--source", choices=SOURCES, help="raw format (default: from the dataset name)")
    parser.add_argument("--strict", action="store_true", help="stop at the first malformed line (file:line)")
    parser.add_argument("--min-rating", type=float, help="keep ratings >= this (default: the dataset's)")
    parser.add_argument("--start", help="window start YYYY-MM-DD, UTC, inclusive (default: the dataset's)")
    parser.add_argument("--end", help="window end YYYY-MM-DD, UTC, exclusive (default: the dataset's)")
    parser.add_argument("--k-core", type=int, help="iterated k-core; 0 = none (default: the dataset's)")
    parser.add_argument(
        "--split-files",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write NAME.{train,valid,test}.inter: seeded 8:1:1 per user (default: the dataset's)",
    )
    parser.add_argument("--seed", type=int, help="seed of the split files (default: 2020)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or printed card")


def run(args: argparse.Namespace) -> int:
    try:
        config = PrepareConfig.for_dataset(
            args.dataset,
            args.source,
            min_rating=args.min_rating,
            start=args.start,
            end=args.end,
            k_core=args.k_core,
            split_files=args.split_files,
            seed=args.seed,
            strict=args.strict,
        )
        prepare_dataset(args.raw, args.out, config, verbose=not args.quiet)
    except (RawFormatError, ValueError, FileNotFoundError) as exc:
        print(f"recbole-hnlm prepare: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recbole-hnlm prepare", description=__doc__.splitlines()[0])
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
