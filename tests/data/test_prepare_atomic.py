"""prepare writes a dataset (inter, split files, item, card) as one unit: a failure at any point leaves the
previous complete dataset, and files in the folder that prepare did not write are never touched."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from recbole_hnlm.data.prepare import RawFormatError, prepare_dataset
from recbole_hnlm.data.prepare.atomic import StagedFiles
from tests.data.test_prepare import amazon18, toys_config, write_lines


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def raw_dumps(folder: Path, users: list[str], meta_gz_cut: bool = False) -> list[Path]:
    """Reviews of ``users`` x items x, y and a metadata gzip (cut in half: truncated) inside ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    reviews = write_lines(
        folder / "Toys_and_Games.json", [amazon18(u, i, text=f"{u}{i}") for u in users for i in ("x", "y")]
    )
    meta = [json.dumps({"asin": i, "title": f"Toy {i}", "description": "d" * 4000}) for i in ("x", "y")]
    data = gzip.compress(("\n".join(meta) + "\n").encode(), mtime=0)
    meta_path = folder / "meta_Toys_and_Games.json.gz"
    meta_path.write_bytes(data[: len(data) // 2] if meta_gz_cut else data)
    return [reviews, meta_path]


def test_a_failure_after_the_inter_leaves_the_previous_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "out" / "toys"
    first = raw_dumps(folder, ["A", "B"])  # the user keeps the raw dumps in the dataset folder
    (folder / "notes.txt").write_text("mine")
    prepare_dataset(first, tmp_path / "out", toys_config(split_files=True), verbose=False)
    before = snapshot(folder)
    assert {"toys.inter", "toys.item", "toys.card.json", "toys.train.inter", "notes.txt"} <= set(before)

    # New reviews (a different .inter) and a truncated metadata gzip: it fails after the .inter is written.
    second = raw_dumps(tmp_path / "new", ["A", "B", "C"], meta_gz_cut=True)
    with pytest.raises(RawFormatError, match=r"meta_Toys_and_Games\.json\.gz: truncated or corrupt gzip"):
        prepare_dataset(second, tmp_path / "out", toys_config(split_files=False), verbose=False)
    assert snapshot(folder) == before  # the old inter, split files, item, card; the raw dumps; notes.txt
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_a_first_prepare_that_fails_leaves_no_dataset_files(tmp_path: Path) -> None:
    raw = raw_dumps(tmp_path / "raw", ["A", "B"], meta_gz_cut=True)
    with pytest.raises(RawFormatError):
        prepare_dataset(raw, tmp_path / "out", toys_config(), verbose=False)
    assert list((tmp_path / "out" / "toys").iterdir()) == []


def test_outputs_the_new_prepare_does_not_write_are_removed_with_the_commit(tmp_path: Path) -> None:
    raw = raw_dumps(tmp_path / "raw", ["A", "B"])
    out = tmp_path / "out"
    prepare_dataset(raw, out, toys_config(split_files=True), verbose=False)
    (out / "toys" / "toys.notes").write_text("not listed in the card: kept")
    card = prepare_dataset(raw[:1], out, toys_config(split_files=False), verbose=False)  # no metadata
    left = {p.name for p in (out / "toys").iterdir()}
    assert left == {"toys.inter", "toys.card.json", "toys.card.md", "toys.notes"}
    assert card["files"] == ["toys.inter"]


def test_staged_files_commit_together_or_not_at_all(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "card").write_text("old card")
    with pytest.raises(RuntimeError), StagedFiles(tmp_path, last=["card"]) as staged:
        staged.write_text("a.txt", "new a")
        staged.write_text("card", "new card")
        raise RuntimeError("interrupted before the commit")
    assert snapshot(tmp_path) == {"a.txt": b"old a", "card": b"old card"}
    with StagedFiles(tmp_path, last=["card"]) as staged:
        staged.write_text("card", "new card")
        staged.write_text("b.txt", "new b")
        staged.remove("a.txt")
    assert snapshot(tmp_path) == {"b.txt": b"new b", "card": b"new card"}
