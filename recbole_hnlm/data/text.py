"""Item and review text read straight from a dataset's RecBole atomic files.

The item text is the ``.item`` columns named by the dataset config key ``text_fields`` (e.g.
``[movie_title, release_year, genre]`` for MovieLens, ``[keywords]`` for toys); reviews come from the
``.inter`` file(s) when they have a ``review_field`` column (default ``review``). Column headers are
``name:type`` as RecBole writes them; values are kept as strings (``token_seq`` values stay
space-separated, which reads naturally for titles and genre lists).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from recbole_hnlm.config_values import default_of


class TextFieldError(KeyError):
    """A text field named in the config is not a column of the atomic file."""

    def __str__(self) -> str:
        return str(self.args[0])


def dataset_dir(data_path: str | Path, dataset: str) -> Path:
    """The folder that holds ``<dataset>.*`` atomic files: ``data_path`` itself or ``data_path/dataset``.

    RecBole's embedded ml-100k (inside the recbole wheel) is used when no folder is found for it.
    """
    base = Path(data_path)
    for folder in (base, base / dataset):
        if any(folder.glob(f"{dataset}.*inter")):
            return folder
    if dataset == "ml-100k":
        import recbole

        return Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k"
    raise FileNotFoundError(f"no atomic files {dataset}.inter found in {base} or {base / dataset}")


def atomic_columns(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    return [h.split(":", 1)[0] for h in header]


def read_atomic(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """An atomic file as strings; raise :class:`TextFieldError` naming the file if a column is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: atomic file not found")
    names = atomic_columns(path)
    wanted = list(columns) if columns is not None else names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise TextFieldError(f"{path}: no column(s) {missing}; the file has {names}")
    frame = pd.read_csv(
        path,
        sep="\t",
        header=0,
        names=names,
        usecols=wanted,
        dtype=str,
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
        encoding="utf-8",
        engine="c",
    )
    return frame[wanted]


def load_item_text(
    folder: Path, dataset: str, text_fields: Sequence[str], iid_field: str = "item_id"
) -> dict[str, dict[str, str]]:
    """``item token -> {field: text}`` for every row of ``<dataset>.item`` (empty fields dropped)."""
    if not text_fields:
        raise TextFieldError(
            f"dataset {dataset!r}: config key 'text_fields' is empty; name the .item columns"
        )
    frame = read_atomic(folder / f"{dataset}.item", [iid_field, *text_fields])
    records = frame.to_dict("records")
    return {row[iid_field]: {f: row[f].strip() for f in text_fields if row[f].strip()} for row in records}


def inter_files(folder: Path, dataset: str) -> list[Path]:
    single = folder / f"{dataset}.inter"
    return [single] if single.is_file() else sorted(folder.glob(f"{dataset}.*.inter"))


def load_reviews(
    folder: Path,
    dataset: str,
    review_field: str = default_of("review_field"),
    uid_field: str = "user_id",
    iid_field: str = "item_id",
) -> dict[tuple[str, str], str]:
    """``(user, item) token pair -> review`` from the ``.inter`` file(s); empty without a review column."""
    reviews: dict[tuple[str, str], str] = {}
    for path in inter_files(folder, dataset):
        if review_field not in atomic_columns(path):
            continue
        frame = read_atomic(path, [uid_field, iid_field, review_field])
        for user, item, text in frame.itertuples(index=False):
            if text.strip():
                reviews.setdefault((user, item), text.strip())
    return reviews
