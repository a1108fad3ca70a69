"""The semantic-negative store: round trip, vectorised lookup, every validation error."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from recbole_hnlm.negatives.store import (
    KEYS_FILE,
    META_FILE,
    VECTORS_FILE,
    SemanticNegativeStore,
    StoreError,
    write_store,
)


class FakeDataset(SimpleNamespace):
    """The few attributes of a RecBole Dataset the store reads."""

    def __init__(self, name: str, users: list[str], items: list[str]):
        super().__init__(
            dataset_name=name,
            uid_field="user_id",
            iid_field="item_id",
            field2id_token={"user_id": np.array(["[PAD]", *users]), "item_id": np.array(["[PAD]", *items])},
            field2token_id={
                "user_id": {t: k for k, t in enumerate(["[PAD]", *users])},
                "item_id": {t: k for k, t in enumerate(["[PAD]", *items])},
            },
            item_num=len(items) + 1,
        )


USERS = ["u1", "u2", "u3"]
ITEMS = ["i1", "i2", "i3", "i4"]


def write(path, dataset, users, items, vectors, **kw):
    from recbole_hnlm.data.fingerprint import dataset_fingerprint

    return write_store(
        path,
        users,
        items,
        vectors,
        producer="test",
        dataset=dataset.dataset_name,
        dataset_fingerprint=dataset_fingerprint(dataset),
        config={"k": 1},
        **kw,
    )


@pytest.fixture
def dataset():
    return FakeDataset("tiny", USERS, ITEMS)


def test_round_trip_and_metadata(tmp_path, dataset):
    vectors = np.array([[1.0, 2.0], [3.0, -4.0], [0.5, 0.25]], dtype=np.float32)
    meta = write(
        tmp_path / "s", dataset, ["u1", "u2", "u3"], ["i1", "i4", "i2"], vectors, details={"model": "m"}
    )
    store = SemanticNegativeStore(tmp_path / "s")
    assert store.meta == meta
    assert (store.dim, len(store)) == (2, 3)
    assert store.vectors.dtype == np.float16 and isinstance(store.vectors, np.memmap)
    np.testing.assert_array_equal(np.asarray(store.vectors, dtype=np.float32), vectors)
    assert list(store.user_tokens) == ["u1", "u2", "u3"] and list(store.item_tokens) == ["i1", "i4", "i2"]
    assert meta.details == {"model": "m"} and meta.dataset == "tiny" and len(meta.config_fingerprint) == 16


def test_lookup_equals_dict_lookup_on_random_batches(tmp_path):
    rng = np.random.default_rng(0)
    users = [f"u{k}" for k in range(40)]
    items = [f"i{k}" for k in range(60)]
    ds = FakeDataset("rand", users, items)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(1, 41, 500), rng.integers(1, 61, 500))})
    su = [users[u - 1] for u, _ in pairs]
    si = [items[i - 1] for _, i in pairs]
    vectors = rng.normal(size=(len(pairs), 5)).astype(np.float32)
    write(tmp_path / "s", ds, su, si, vectors)
    bound = SemanticNegativeStore(tmp_path / "s").bind(ds)
    expected = {pair: row for row, pair in enumerate(pairs)}
    for _ in range(20):
        bu, bi = rng.integers(1, 41, 256), rng.integers(1, 61, 256)
        rows = bound.rows(bu, bi)
        assert rows.tolist() == [expected.get((int(u), int(i)), -1) for u, i in zip(bu, bi)]
        gathered = bound.gather(rows).numpy()
        want = (
            np.stack([vectors[r] if r >= 0 else np.zeros(5) for r in rows])
            .astype(np.float16)
            .astype(np.float32)
        )
        np.testing.assert_array_equal(gathered, want)


@pytest.mark.parametrize(
    ("users", "items", "vectors", "message"),
    [
        (["u1"], ["i1", "i2"], np.zeros((2, 2)), "length mismatch"),
        (["u1", "u2"], ["i1", "i2"], np.zeros(2), "2-D"),
        (
            ["u1", "u2"],
            ["i1", "i2"],
            np.array([[0.0, np.nan], [1, 1]]),
            "1 vectors contain NaN or inf: row 0 ('u1', 'i1')",
        ),
        (["u1", "u2"], ["i1", "i2"], np.array([[0.0, 1], [np.inf, 1]]), "row 1 ('u2', 'i2')"),
        (["u1", "u2"], ["i1", "i2"], np.array([[1e6, 1], [1, 1]]), "float16 range"),
        (["u1", "u1"], ["i1", "i1"], np.zeros((2, 2)), "1 duplicate (user, item) keys: row 1 ('u1', 'i1')"),
        (["u\t1", "u2"], ["i1", "i2"], np.zeros((2, 2)), "tabs/newlines"),
    ],
)
def test_write_rejects_bad_input(tmp_path, dataset, users, items, vectors, message):
    with pytest.raises(StoreError, match=re.escape(message)):
        write(tmp_path / "s", dataset, users, items, vectors)
    assert not (tmp_path / "s").exists()


def test_failed_rewrite_keeps_the_old_store(tmp_path, dataset):
    write(tmp_path / "s", dataset, ["u1"], ["i1"], np.ones((1, 2)))
    with pytest.raises(StoreError):
        write(tmp_path / "s", dataset, ["u1"], ["i1"], np.full((1, 2), np.nan))
    store = SemanticNegativeStore(tmp_path / "s")
    assert np.asarray(store.vectors).tolist() == [[1.0, 1.0]]
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temp folders left behind


def test_open_rejects_inconsistent_files(tmp_path, dataset):
    path = tmp_path / "s"
    write(path, dataset, ["u1", "u2"], ["i1", "i2"], np.ones((2, 3)))
    meta = json.loads((path / META_FILE).read_text())

    (path / META_FILE).write_text(json.dumps({**meta, "dim": 4}))
    with pytest.raises(StoreError, match=r"vectors have dimension 3, but meta\.json field 'dim' says 4"):
        SemanticNegativeStore(path)
    (path / META_FILE).write_text(json.dumps({**meta, "count": 5}))
    with pytest.raises(
        StoreError, match=r"keys\.tsv has 2 rows, vectors\.npy has 2, meta\.json field 'count' says 5"
    ):
        SemanticNegativeStore(path)
    (path / META_FILE).write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(StoreError, match="field 'format'"):
        SemanticNegativeStore(path)
    (path / META_FILE).write_text("{not json")
    with pytest.raises(StoreError, match="invalid JSON at line 1"):
        SemanticNegativeStore(path)
    with pytest.raises(StoreError, match=r"missing meta\.json"):
        SemanticNegativeStore(tmp_path / "nowhere")


def test_nan_rows_on_disk_are_reported_on_bind(tmp_path, dataset):
    path = tmp_path / "s"
    write(path, dataset, ["u1", "u2"], ["i1", "i2"], np.ones((2, 3)))
    vectors = np.load(path / VECTORS_FILE)
    vectors[1, 2] = np.nan
    np.save(path / VECTORS_FILE, vectors)
    with pytest.raises(StoreError, match=r"1 rows contain NaN or inf: row 1 \('u2', 'i2'\)"):
        SemanticNegativeStore(path).bind(dataset)


def test_bind_rejects_a_store_built_for_another_dataset(tmp_path, dataset):
    write(tmp_path / "s", dataset, ["u1"], ["i1"], np.ones((1, 2)))
    other_name = FakeDataset("other", USERS, ITEMS)
    with pytest.raises(StoreError, match=r"built for dataset 'tiny'.*this run uses 'other'"):
        SemanticNegativeStore(tmp_path / "s").bind(other_name)
    reindexed = FakeDataset("tiny", USERS, list(reversed(ITEMS)))  # same name, different vocabulary
    with pytest.raises(StoreError, match="fingerprint"):
        SemanticNegativeStore(tmp_path / "s").bind(reindexed)


def test_bind_rejects_unknown_tokens_with_their_line(tmp_path, dataset):
    path = tmp_path / "s"
    write(path, dataset, ["u1", "u2"], ["i1", "i2"], np.ones((2, 2)))
    keys = (path / KEYS_FILE).read_text().replace("u2\ti2", "ghost\ti2")
    (path / KEYS_FILE).write_text(keys)
    with pytest.raises(StoreError, match=r"1 user tokens are not in dataset 'tiny': 'ghost' \(line 3\)"):
        SemanticNegativeStore(path).bind(dataset)


def _bump(path, extra_rows: int) -> None:
    """Append ``extra_rows`` copies of the last vector and raise ``count``, as a hand edit would."""
    vectors = np.load(path / VECTORS_FILE)
    np.save(path / VECTORS_FILE, np.concatenate([vectors, vectors[-extra_rows:]]))
    meta = json.loads((path / META_FILE).read_text())
    meta["count"] += extra_rows
    (path / META_FILE).write_text(json.dumps(meta))


def test_duplicate_keys_on_disk_are_named(tmp_path, dataset):
    vectors = np.ones((3, 2), dtype=np.float32)
    write(tmp_path / "a", dataset, ["u1", "u2", "u3"], ["i1", "i2", "i3"], vectors)
    with open(tmp_path / "a" / KEYS_FILE, "a") as handle:  # a row appended, count bumped
        handle.write("u2\ti2\n")
    _bump(tmp_path / "a", 1)
    with pytest.raises(
        StoreError, match=r"keys\.tsv: 1 duplicate .*row 3 \(line 5\) \('u2', 'i2'\) repeats row 1"
    ):
        SemanticNegativeStore(tmp_path / "a")

    write(tmp_path / "b", dataset, ["u1", "u2", "u3"], ["i1", "i2", "i3"], vectors)
    lines = (tmp_path / "b" / KEYS_FILE).read_text().splitlines()
    lines[3] = lines[1]  # a row replaced by a copy of another: a duplicate, not a "missing pair"
    (tmp_path / "b" / KEYS_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreError, match=r"row 2 \(line 4\) \('u1', 'i1'\) repeats row 0"):
        SemanticNegativeStore(tmp_path / "b")


def test_unreadable_keys_and_vectors_name_their_file(tmp_path, dataset):
    vectors = np.ones((3, 2), dtype=np.float32)
    write(tmp_path / "s", dataset, ["u1", "u2", "u3"], ["i1", "i2", "i3"], vectors)
    keys = (tmp_path / "s" / KEYS_FILE).read_text()
    (tmp_path / "s" / KEYS_FILE).write_text(keys.replace("u2\ti2", "u2\ti2\textra"))
    with pytest.raises(StoreError, match=r"keys\.tsv: not a 2-column .*line 3"):
        SemanticNegativeStore(tmp_path / "s")
    (tmp_path / "s" / KEYS_FILE).write_text(keys)
    (tmp_path / "s" / VECTORS_FILE).write_bytes(b"")
    with pytest.raises(StoreError, match=r"vectors\.npy: cannot be read as a \.npy matrix \(EOFError"):
        SemanticNegativeStore(tmp_path / "s")


def test_messages_show_numpy_tokens_as_plain_strings(tmp_path):
    users, items = np.array(["7", "8"]), np.array(["i1", "i2"])  # numpy strings: repr np.str_('7')
    with pytest.raises(StoreError) as err:
        vectors = np.array([[0.0, np.nan], [1, 1]])
        write_store(tmp_path / "s", users, items, vectors, producer="t", dataset="d", dataset_fingerprint="f")
    assert "row 0 ('7', 'i1')" in str(err.value) and "np.str_" not in str(err.value)
