"""Atomic artefact folders: only an artefact of the same kind (or an empty folder) is ever replaced."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from recbole_hnlm.io import ForeignPathError, atomic_directory, atomic_write_json, check_replaceable
from recbole_hnlm.negatives.store import SemanticNegativeStore, write_store
from recbole_hnlm.stages.profiles import PROFILES_FORMAT, legacy_profiles_meta, write_profiles

USERS, ITEMS = ["u1", "u2"], ["i1", "i2"]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every entry under ``root`` (folders as None) with its bytes: to prove a folder was not touched."""
    out: dict[str, bytes | None] = {}
    for entry in sorted(root.rglob("*")):
        out[str(entry.relative_to(root))] = None if entry.is_dir() else entry.read_bytes()
    return out


def store(path: Path, seed: int = 0):
    vectors = np.random.default_rng(seed).normal(size=(2, 4)).astype(np.float32)
    return write_store(path, USERS, ITEMS, vectors, producer="test", dataset="toy", dataset_fingerprint="fp")


def foreign_folder(path: Path) -> Path:
    (path / "papers" / "drafts").mkdir(parents=True)
    (path / "notes.txt").write_text("my thesis notes\n")
    (path / "papers" / "drafts" / "chapter1.tex").write_text("\\chapter{One}\n")
    (path / "meta.json").write_text(json.dumps({"owner": "someone else"}))
    return path


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def test_foreign_folder_survives_write_store_untouched(tmp_path):
    target = foreign_folder(tmp_path / "mine")
    before = snapshot(target)
    with pytest.raises(ForeignPathError, match=re.escape(str(target))):
        store(target)
    assert snapshot(target) == before
    assert leftovers(tmp_path, "mine") == []


def test_foreign_folder_without_meta_is_refused(tmp_path):
    target = tmp_path / "data"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "x.bin").write_bytes(b"\x00\x01")
    before = snapshot(target)
    with pytest.raises(ForeignPathError, match=r"has no meta\.json"):
        store(target)
    assert snapshot(target) == before


def test_file_at_path_is_refused_without_leftovers(tmp_path):
    target = tmp_path / "store"
    target.write_text("not a folder\n")
    with pytest.raises(ForeignPathError, match=re.escape(str(target)) + ".*not a folder"):
        store(target)
    assert target.read_text() == "not a folder\n"
    assert leftovers(tmp_path, "store") == [] and not any("old-" in p.name for p in tmp_path.iterdir())


def test_symlink_at_path_is_refused(tmp_path):
    real = tmp_path / "real"
    store(real)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with pytest.raises(ForeignPathError, match="symbolic link"):
        store(link, seed=1)
    assert link.is_symlink() and SemanticNegativeStore(real).meta.count == 2


def test_own_store_and_empty_folder_are_replaced(tmp_path):
    target = tmp_path / "store"
    target.mkdir()  # an empty folder, e.g. made by the user beforehand
    store(target, seed=0)
    first = np.asarray(SemanticNegativeStore(target).vectors).copy()
    store(target, seed=1)
    second = np.asarray(SemanticNegativeStore(target).vectors)
    assert not np.array_equal(first, second)
    assert leftovers(tmp_path, "store") == []


def test_another_kind_of_our_artefact_is_not_replaced(tmp_path):
    profiles = tmp_path / "profiles"
    write_profiles(profiles, [{"token": "i1"}], [{"token": "u1"}], meta={"stage": "profiles"})
    assert json.loads((profiles / "meta.json").read_text())["format"] == PROFILES_FORMAT
    before = snapshot(profiles)
    with pytest.raises(ForeignPathError, match="recbole-hnlm/semantic-negatives"):
        store(profiles)
    assert snapshot(profiles) == before


def test_artefacts_written_before_the_format_field_stay_replaceable(tmp_path):
    old = tmp_path / "profiles"
    old.mkdir()
    (old / "meta.json").write_text(json.dumps({"stage": "profiles", "dataset_fingerprint": "fp"}))
    (old / "items.jsonl").write_text("")
    check_replaceable(old, PROFILES_FORMAT, legacy=legacy_profiles_meta)
    write_profiles(old, [{"token": "i1"}], [], meta={"stage": "profiles", "dataset_fingerprint": "fp"})
    assert json.loads((old / "meta.json").read_text())["format"] == PROFILES_FORMAT


def test_folder_appearing_during_the_body_is_not_replaced(tmp_path):
    target = tmp_path / "late"
    with pytest.raises(ForeignPathError), atomic_directory(target, "recbole-hnlm/test") as tmp:
        (tmp / "meta.json").write_text(json.dumps({"format": "recbole-hnlm/test"}))
        foreign_folder(target)
    assert (target / "notes.txt").read_text() == "my thesis notes\n"
    assert leftovers(tmp_path, "late") == []


def test_failed_body_leaves_the_previous_artefact(tmp_path):
    target = tmp_path / "art"
    with atomic_directory(target, "recbole-hnlm/test") as tmp:
        (tmp / "meta.json").write_text(json.dumps({"format": "recbole-hnlm/test", "n": 1}))
    with pytest.raises(RuntimeError), atomic_directory(target, "recbole-hnlm/test") as tmp:
        (tmp / "meta.json").write_text(json.dumps({"format": "recbole-hnlm/test", "n": 2}))
        raise RuntimeError("body failed")
    assert json.loads((target / "meta.json").read_text())["n"] == 1
    assert leftovers(tmp_path, "art") == [] and os.listdir(tmp_path) == ["art"]


def test_json_is_written_strict_with_non_finite_numbers_as_null(tmp_path):
    path = tmp_path / "result.json"
    nested = {"score": float("-inf"), "rows": [float("nan"), 1.5], "deep": {"x": float("inf")}}
    atomic_write_json(path, nested)
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"score": None, "rows": [None, 1.5], "deep": {"x": None}}


def test_artefact_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
    import threading

    from recbole_hnlm.io import artefact_lock, lock_file

    store = tmp_path / "negatives" / "hnlm"
    order = []
    with artefact_lock(store), artefact_lock(store):  # a stage holding it calls a writer taking it again

        def wait_then_note():
            with artefact_lock(store):
                order.append("other")

        other = threading.Thread(target=wait_then_note)
        other.start()
        other.join(0.5)
        assert other.is_alive() and order == []  # the other thread waits for the holder
        order.append("holder")
    other.join(10)
    assert order == ["holder", "other"]
    assert lock_file(store) == tmp_path / "negatives" / ".hnlm.lock" and not store.exists()
    assert os.listdir(tmp_path / "negatives") == []  # the lock file exists only while it is held


def test_the_lock_excludes_across_processes_while_its_file_comes_and_goes(tmp_path):
    # Read-modify-write of a counter by 4 processes: a lost update would mean two holders at once (the
    # outermost holder removes the lock file, so a waiter must retry on the new file, not hold the old one).
    import subprocess
    import sys

    counter = tmp_path / "counter"
    counter.write_text("0")
    script = (
        "from pathlib import Path\n"
        "from recbole_hnlm.io import artefact_lock\n"
        f"counter = Path({str(counter)!r})\n"
        "for _ in range(25):\n"
        f"    with artefact_lock({str(tmp_path / 'store')!r}):\n"
        "        value = int(counter.read_text())\n"
        "        counter.write_text(str(value + 1))\n"
    )
    workers = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert [w.wait(120) for w in workers] == [0, 0, 0, 0]
    assert counter.read_text() == "100"
    assert sorted(os.listdir(tmp_path)) == ["counter"]


def test_a_second_process_waits_for_the_artefact_lock(tmp_path):
    import subprocess
    import sys
    import time

    from recbole_hnlm.io import artefact_lock

    store = tmp_path / "store"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from recbole_hnlm.io import artefact_lock\n"
            f"with artefact_lock({str(store)!r}):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(1.5)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.perf_counter()
        with artefact_lock(store):
            waited = time.perf_counter() - start
        assert waited > 0.5
    finally:
        holder.wait(30)


def test_atomic_directory_holds_the_lock_while_writing(tmp_path):
    import threading

    from recbole_hnlm.io import artefact_lock

    target = tmp_path / "artefact"
    seen = []

    def other_writer():
        with artefact_lock(target):
            seen.append((target / "meta.json").is_file())

    with atomic_directory(target, "test/format") as tmp:
        (tmp / "meta.json").write_text(json.dumps({"format": "test/format"}))
        other = threading.Thread(target=other_writer)
        other.start()
        other.join(0.3)
        assert seen == []  # another writer of the same artefact waits until this one has replaced it
    other.join(10)
    assert seen == [True]


def test_a_writer_under_the_lock_holds_it_on_the_path_its_arguments_name(tmp_path):
    """under_artefact_lock: the lock of path_of(arguments by name), however the writer was called."""
    from recbole_hnlm.io import lock_file, under_artefact_lock

    seen = []

    @under_artefact_lock(lambda root, **_: tmp_path / root / "store")
    def write(config, root, *, force=False):
        """Writes the store."""
        seen.append((config, root, force, lock_file(tmp_path / root / "store").is_file()))
        return root

    assert write("c", "a") == "a" and write("c", root="b", force=True) == "b"
    assert seen == [("c", "a", False, True), ("c", "b", True, True)]  # held while writing
    assert not lock_file(tmp_path / "a" / "store").exists()  # released after
    assert write.__name__ == "write" and write.__doc__ == "Writes the store."
