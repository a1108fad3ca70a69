"""The dataset registry: known dataset names, their raw sources and filters, and a clear missing-files error.

Any folder of RecBole atomic files works as a dataset (``--data_path`` pointing at a folder holding
``<name>/<name>.inter``); the names below are the ones the paper uses, with the raw dumps they are
prepared from (``recbole-hnlm prepare``) and the paper's filters (``notes/paper.md`` §4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCES: tuple[str, ...] = ("amazon2014", "amazon2018", "amazon2023", "yelp")

AMAZON_2014_URL = "https://jmcauley.ucsd.edu/data/amazon/links.html"
AMAZON_2018_URL = "https://nijianmo.github.io/amazon/index.html"
AMAZON_2023_URL = "https://amazon-reviews-2023.github.io/"
YELP_URL = "https://www.yelp.com/dataset"


class AtomicFileError(ValueError):
    """An atomic file RecBole would read is malformed (its header, a required column)."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's atomic files are missing; the message says how to prepare them."""


@dataclass(frozen=True)
class DatasetSpec:
    """A known dataset: where its raw files come from and the filters that turn them into atomic files.

    ``start``/``end`` bound the review date as a half-open UTC window ``[start, end)``; ``k_core`` 0 means
    no k-core; ``split_files`` also writes ``<name>.{train,valid,test}.inter`` (a seeded 8:1:1 split per
    user) because the dataset's yaml loads benchmark files.
    """

    name: str
    source: str | None  # None: not prepared from a raw dump
    raw_files: tuple[str, ...] = ()
    url: str = ""
    min_rating: float | None = None
    start: str | None = None
    end: str | None = None
    k_core: int = 0
    split_files: bool = False
    embedded: bool = False
    note: str = ""


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "toys",
            "amazon2018",
            ("Toys_and_Games.json.gz", "meta_Toys_and_Games.json.gz"),
            AMAZON_2018_URL,
            min_rating=4.0,
            start="2015-01-01",
            end="2018-01-01",
            k_core=10,
        ),
        DatasetSpec(
            "cds",
            "amazon2018",
            ("CDs_and_Vinyl.json.gz", "meta_CDs_and_Vinyl.json.gz"),
            AMAZON_2018_URL,
            min_rating=4.0,
            start="2014-01-01",
            end="2016-01-01",
            k_core=10,
        ),
        DatasetSpec(
            "yelp",
            "yelp",
            ("yelp_academic_dataset_review.json", "yelp_academic_dataset_business.json"),
            YELP_URL,
            min_rating=4.0,
            start="2015-01-01",
            end="2018-01-01",
            k_core=10,
            split_files=True,
        ),
        DatasetSpec(
            "electronics",
            "amazon2023",
            ("Electronics.jsonl.gz", "meta_Electronics.jsonl.gz"),
            AMAZON_2023_URL,
            min_rating=3.0,
            start="2010-01-01",
            end="2018-01-01",
            k_core=0,
            note="no k-core: the paper states none and its 1.83 interactions/user rule out any k >= 2",
        ),
        DatasetSpec(
            "fashion",
            "amazon2023",
            ("Amazon_Fashion.jsonl.gz", "meta_Amazon_Fashion.jsonl.gz"),
            AMAZON_2023_URL,
            min_rating=3.0,
            start="2010-01-01",
            end="2018-01-01",
            k_core=5,
            note="filters not given by the paper: the Electronics 2023 protocol plus a 5-core",
        ),
        DatasetSpec(
            "ml-1m",
            None,
            ("ml-1m.inter", "ml-1m.item"),
            "https://recbole.s3-accelerate.amazonaws.com/ProcessedDatasets/MovieLens/ml-1m.zip",
        ),
        DatasetSpec("ml-100k", None, embedded=True, note="embedded in the recbole wheel"),
    )
}


def get_spec(name: str) -> DatasetSpec | None:
    return DATASETS.get(name)


def default_source(name: str) -> str | None:
    spec = DATASETS.get(name)
    return spec.source if spec is not None else None


def _config_get(config: Any, key: str) -> Any:
    if config is None:
        return None
    try:
        return config[key]
    except (KeyError, TypeError):
        return None


def _dataset_folder(name: str, data_path: Path) -> Path:
    """``data_path`` may be the parent folder (``--data_path``) or RecBole's resolved ``<parent>/<name>``."""
    nested = data_path / name
    if nested.is_dir() or data_path.name != name:
        return nested
    return data_path


def _expected_files(name: str, config: Any) -> list[str]:
    bench = _config_get(config, "benchmark_filename")
    if isinstance(bench, str):
        bench = [bench]
    if bench:
        return [f"{name}.{part}.inter" for part in bench]
    return [f"{name}.inter"]


def how_to_prepare(name: str) -> str:
    """The instructions a missing-files error gives for ``name``."""
    spec = DATASETS.get(name)
    generic = (
        f"or pass --data_path pointing at a folder that holds {name}/{name}.inter "
        "(any RecBole atomic-file dataset works)."
    )
    if spec is None:
        return f"'{name}' is not a dataset this plugin prepares; create its atomic files yourself, {generic}"
    if spec.source is None:
        return f"Download the atomic files ({', '.join(spec.raw_files)}) from {spec.url}, {generic}"
    reviews, meta = spec.raw_files
    return (
        f"Download the raw {spec.source} files {reviews} (reviews) and {meta} (metadata) from {spec.url}, "
        f"then run: recbole-hnlm prepare --dataset {name} --raw {reviews} {meta} --out dataset/ ; "
        f"{generic}"
    )


def check_dataset_files(name: str, data_path: str | Path, config: Mapping[str, Any] | Any = None) -> None:
    """Raise :class:`DatasetNotFoundError` when the atomic files RecBole will read for ``name`` are missing.

    ``config`` (a RecBole ``Config`` or a dict) decides the layout: with ``benchmark_filename`` the files
    ``<name>.<part>.inter`` are needed, otherwise ``<name>.inter``. ``ml-100k`` needs nothing (RecBole
    loads the copy inside its wheel).
    """
    spec = DATASETS.get(name)
    if spec is not None and spec.embedded:
        return
    folder = _dataset_folder(name, Path(data_path))
    expected = [folder / f for f in _expected_files(name, config)]
    missing = [p for p in expected if not p.is_file()]
    if missing:
        listed = ", ".join(str(p) for p in missing)
        raise DatasetNotFoundError(
            f"Dataset '{name}': missing atomic file(s) {listed}. {how_to_prepare(name)}"
        )
    fields = [_config_get(config, key) or default for key, default in ID_FIELDS]
    for path in expected:
        check_inter_header(path, fields)


ID_FIELDS = (("USER_ID_FIELD", "user_id"), ("ITEM_ID_FIELD", "item_id"))


def check_inter_header(path: Path, required: Sequence[str]) -> None:
    """Raise :class:`AtomicFileError` naming ``path`` when its header line is not RecBole's ``name:type``
    columns (RecBole would drop untyped columns silently) or lacks a ``required`` field (RecBole would fail
    later with a bare ``KeyError``)."""
    with open(path, encoding="utf-8") as handle:
        line = handle.readline()
    if not line.strip():
        raise AtomicFileError(f"{path}, line 1: the file is empty; an atomic file starts with its header")
    header = line.rstrip("\r\n").split("\t")
    untyped = [column for column in header if ":" not in column]
    if untyped:
        raise AtomicFileError(
            f"{path}, line 1: column(s) {untyped} have no type; RecBole's header is name:type per column "
            "(token, token_seq, float, float_seq), e.g. user_id:token"
        )
    names = [column.split(":", 1)[0] for column in header]
    absent = [field for field in required if field not in names]
    if absent:
        raise AtomicFileError(
            f"{path}, line 1: no column {absent} (the header has {names}); name the ID columns with "
            "USER_ID_FIELD / ITEM_ID_FIELD or rename the columns"
        )
