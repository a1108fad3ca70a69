"""Raw dumps -> atomic files: exact rows, skip counts, k-core fixed point, strict mode, determinism."""

from __future__ import annotations

import argparse
import calendar
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from recbole_hnlm.data.prepare import PrepareConfig, RawFormatError, configure_parser, prepare_dataset, run
from recbole_hnlm.data.prepare.kcore import kcore_mask

REPO = Path(__file__).resolve().parents[2]
T2016 = calendar.timegm((2016, 1, 1, 0, 0, 0, 0, 0, 0))  # inside the toys window
T2014 = calendar.timegm((2014, 6, 1, 0, 0, 0, 0, 0, 0))  # before it
T2018 = calendar.timegm((2018, 1, 1, 0, 0, 0, 0, 0, 0))  # the exclusive end


def write_lines(path: Path, lines: list[str | bytes], gz: bool = False) -> Path:
    data = b"".join((ln if isinstance(ln, bytes) else ln.encode("utf-8")) + b"\n" for ln in lines)
    if gz:
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def amazon18(user: str, item: str, rating: float = 5.0, ts: int = T2016, text: str = "ok") -> str:
    return json.dumps(
        {"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": ts, "reviewText": text}
    )


def read_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def grid(users: list[str], items: list[str], ts: int = T2016) -> list[str]:
    """Every user reviews every item (times increase with the item's position)."""
    return [amazon18(u, it, ts=ts + k) for u in users for k, it in enumerate(items)]


@pytest.fixture
def toys_raw(tmp_path: Path) -> list[Path]:
    """2 users x 2 items (2-core) plus one of each kind of bad line, in a gzip reviews file."""
    good = [
        amazon18("A", "x", ts=T2016 + 10, text='"Quoted" start\twith tab\nand newline'),
        amazon18("A", "y", ts=T2016 + 20, text="plain"),
        amazon18("B", "x", ts=T2016 + 30, text=""),
        amazon18("B", "y", ts=T2016 + 40, text="later dup loses"),
        amazon18("B", "y", ts=T2016 + 5, text="earliest dup wins"),  # duplicate: earlier time, later line
    ]
    bad = [
        "{not json",  # bad_json
        json.dumps({"asin": "x", "overall": 5, "unixReviewTime": T2016}),  # missing_field (reviewerID)
        json.dumps({"reviewerID": "C", "asin": None, "overall": 5, "unixReviewTime": T2016}),  # missing_field
        json.dumps({"reviewerID": "C", "asin": "x", "overall": "five", "unixReviewTime": T2016}),  # bad_value
        json.dumps(
            {"reviewerID": "C D", "asin": "x", "overall": 5, "unixReviewTime": T2016}
        ),  # bad_value (id)
        b'{"reviewerID": "C", "asin": "\xff\xfe", "overall": 5}',  # bad_encoding
        "",  # blank_line
        "[1, 2]",  # bad_json (not an object)
        amazon18("C", "x", rating=3.0),  # below_min_rating
        amazon18("C", "x", ts=T2014),  # out_of_window
        amazon18("C", "y", ts=T2018),  # out_of_window (end is exclusive)
    ]
    reviews = write_lines(tmp_path / "Toys_and_Games.json.gz", good[:2] + bad + good[2:], gz=True)
    meta = write_lines(
        tmp_path / "meta_Toys_and_Games.json",
        [
            json.dumps(
                {
                    "asin": "x",
                    "title": "Toy\tX",
                    "category": ["Toys & Games", "Dolls"],
                    "brand": "B1",
                    "description": ["Line one", "line two"],
                }
            ),
            json.dumps({"asin": "x", "title": "dup meta ignored"}),
            json.dumps({"asin": "zzz", "title": "not in the data"}),
            json.dumps({"title": "no asin"}),
            "oops",
        ],
    )
    return [reviews, meta]


def toys_config(**kw) -> PrepareConfig:
    return PrepareConfig.for_dataset("toys", **{"k_core": 2, **kw})


def test_amazon2018_exact_rows_and_skip_counts(tmp_path: Path, toys_raw: list[Path]) -> None:
    card = prepare_dataset(toys_raw, tmp_path / "out", toys_config(), verbose=False)
    folder = tmp_path / "out" / "toys"
    assert read_rows(folder / "toys.inter") == [
        ["user_id:token", "item_id:token", "rating:float", "timestamp:float", "review:token"],
        ["A", "x", "5", str(T2016 + 10), '\u201cQuoted" start with tab and newline'],
        ["A", "y", "5", str(T2016 + 20), "plain"],
        ["B", "y", "5", str(T2016 + 5), "earliest dup wins"],
        ["B", "x", "5", str(T2016 + 30), ""],
    ]
    assert read_rows(folder / "toys.item") == [
        ["item_id:token", "title:token_seq", "categories:token_seq", "brand:token", "description:token"],
        ["x", "Toy X", "Toys & Games, Dolls", "B1", "Line one line two"],
        ["y", "", "", "", ""],
    ]
    assert card["skips"]["Toys_and_Games.json.gz"] == {
        "bad_encoding": 1,
        "bad_json": 2,
        "bad_value": 2,
        "below_min_rating": 1,
        "blank_line": 1,
        "missing_field": 2,
        "out_of_window": 2,
    }
    assert card["skips"]["meta_Toys_and_Games.json"] == {"bad_json": 1, "missing_field": 1}
    assert card["duplicates_dropped"] == 1
    assert card["metadata"]["items_without_metadata"] == 1
    assert card["metadata"]["duplicate_metadata_lines"] == 1
    assert (card["users"], card["items"], card["interactions"]) == (2, 2, 4)
    assert card["density"] == 1.0
    assert [s["interactions"] for s in card["steps"]] == [8, 7, 5, 4, 4]
    saved = json.loads((folder / "toys.card.json").read_text())
    assert saved["fingerprint"] == card["fingerprint"] and len(card["fingerprint"]) == 16
    assert "| 2 | 2 | 4 |" in (folder / "toys.card.md").read_text()
    assert not list(folder.glob(".*")), "temp files left behind"


def test_strict_mode_names_file_and_line(tmp_path: Path, toys_raw: list[Path]) -> None:
    with pytest.raises(RawFormatError, match=r"Toys_and_Games\.json\.gz:3: bad_json"):
        prepare_dataset(toys_raw, tmp_path / "out", toys_config(strict=True), verbose=False)
    assert not (tmp_path / "out" / "toys" / "toys.inter").exists()


def test_strict_mode_accepts_filter_drops(tmp_path: Path) -> None:
    raw = write_lines(tmp_path / "Toys.json", [amazon18("A", "x"), amazon18("A", "y", ts=T2014)])
    card = prepare_dataset([raw], tmp_path / "o", toys_config(k_core=0, strict=True), verbose=False)
    assert card["interactions"] == 1 and card["skips"]["Toys.json"] == {"out_of_window": 1}
    assert not (tmp_path / "o" / "toys" / "toys.item").exists()


def test_deterministic_bytes(tmp_path: Path, toys_raw: list[Path]) -> None:
    outs = []
    for name in ("one", "two"):
        prepare_dataset(toys_raw, tmp_path / name, toys_config(), verbose=False)
        folder = tmp_path / name / "toys"
        outs.append({p.name: p.read_bytes() for p in sorted(folder.iterdir())})
    assert outs[0] == outs[1]
    assert sorted(outs[0]) == ["toys.card.json", "toys.card.md", "toys.inter", "toys.item"]


def naive_kcore(pairs: list[tuple[int, int]], k: int) -> set[tuple[int, int]]:
    kept = set(pairs)
    while True:
        ucount: dict[int, int] = {}
        icount: dict[int, int] = {}
        for u, i in kept:
            ucount[u] = ucount.get(u, 0) + 1
            icount[i] = icount.get(i, 0) + 1
        nxt = {(u, i) for u, i in kept if ucount[u] >= k and icount[i] >= k}
        if nxt == kept:
            return kept
        kept = nxt


def test_kcore_needs_several_passes() -> None:
    # users 0,1 x items 0,1 form a 2-core; user 2 hangs on items 1 and 2, item 2 has only user 2,
    # so pass 1 drops item 2, which leaves user 2 with one interaction, dropped in pass 2.
    users = np.array([0, 0, 1, 1, 2, 2])
    items = np.array([0, 1, 0, 1, 1, 2])
    mask, passes = kcore_mask(users, items, 2)
    assert mask.tolist() == [True, True, True, True, False, False]
    assert passes == 3  # two passes that drop rows, one that confirms the fixed point


def test_kcore_fixed_point_matches_naive_on_random_data() -> None:
    rng = np.random.default_rng(0)
    pairs = sorted({(int(u), int(i)) for u, i in zip(rng.integers(0, 60, 900), rng.integers(0, 40, 900))})
    users = np.array([p[0] for p in pairs])
    items = np.array([p[1] for p in pairs])
    for k in (3, 10, 20):
        mask, passes = kcore_mask(users, items, k)
        kept = {p for p, m in zip(pairs, mask) if m}
        assert kept == naive_kcore(pairs, k)
        if kept:
            assert np.bincount(users[mask]).max() >= k
            assert min(np.bincount(users[mask])[np.unique(users[mask])]) >= k
            assert min(np.bincount(items[mask])[np.unique(items[mask])]) >= k
        assert passes >= 1
    assert kcore_mask(users, items, 0)[0].all()


def test_prepare_applies_kcore_to_fixed_point(tmp_path: Path) -> None:
    users = ["u0", "u1", "u2"]
    lines = grid(users, ["a", "b", "c"])  # a 3-core
    lines += [amazon18("u3", "a"), amazon18("u3", "b"), amazon18("u3", "d"), amazon18("u0", "d")]
    raw = write_lines(tmp_path / "Toys.json", lines)
    card = prepare_dataset([raw], tmp_path / "o", toys_config(k_core=3), verbose=False)
    rows = read_rows(tmp_path / "o" / "toys" / "toys.inter")[1:]
    assert {(r[0], r[1]) for r in rows} == {(u, i) for u in users for i in "abc"}
    assert card["steps"][-1]["passes"] == 3


def test_amazon2014_python_literal_metadata(tmp_path: Path) -> None:
    reviews = write_lines(
        tmp_path / "reviews_Toys_and_Games.json.gz",
        [
            json.dumps(
                {
                    "reviewerID": "A",
                    "asin": "x",
                    "overall": 4.0,
                    "unixReviewTime": T2014,
                    "reviewText": "good",
                    "summary": "s",
                }
            ),
            "{'reviewerID': 'B', 'asin': 'x', 'overall': 5.0, 'unixReviewTime': " + str(T2014) + "}",
        ],
        gz=True,
    )
    meta = write_lines(
        tmp_path / "meta_Toys_and_Games.json.gz",
        [
            "{'asin': 'x', 'title': 'Bear',"
            " 'categories': [['Toys & Games', 'Stuffed'], ['Toys & Games', 'Kids']],"
            " 'brand': \"Ty's\", 'description': 'Soft.'}",
            "{'asin': 'x', 'broken': ",
        ],
        gz=True,
    )
    config = PrepareConfig.for_dataset("toys", "amazon2014", start="2014-01-01", end="2015-01-01", k_core=0)
    card = prepare_dataset([reviews, meta], tmp_path / "o", config, verbose=False)
    folder = tmp_path / "o" / "toys"
    assert read_rows(folder / "toys.inter")[1:] == [
        ["A", "x", "4", str(T2014), "good"],
        ["B", "x", "5", str(T2014), ""],
    ]
    assert read_rows(folder / "toys.item")[1] == ["x", "Bear", "Toys & Games, Stuffed, Kids", "Ty's", "Soft."]
    assert card["skips"]["meta_Toys_and_Games.json.gz"] == {"bad_json": 1}


def test_amazon2023_jsonl(tmp_path: Path) -> None:
    ms = T2016 * 1000 + 250
    rev = [
        {
            "user_id": "U1",
            "parent_asin": "P1",
            "asin": "C1",
            "rating": 3.0,
            "timestamp": ms,
            "text": "fine",
            "title": "t",
        },
        {"user_id": "U1", "parent_asin": "P2", "rating": 2.0, "timestamp": ms, "text": "meh"},  # < 3
        {
            "user_id": "U2",
            "parent_asin": "P1",
            "rating": 5.0,
            "timestamp": 1199145600000,
            "text": "old",
        },  # 2008
    ]
    reviews = write_lines(tmp_path / "Electronics.jsonl", [json.dumps(r) for r in rev])
    meta = write_lines(
        tmp_path / "meta_Electronics.jsonl",
        [
            json.dumps(
                {
                    "parent_asin": "P1",
                    "title": "Cable",
                    "categories": ["Electronics", "Cables"],
                    "store": "Acme",
                    "description": ["Fast.", "Long."],
                    "main_category": "All Electronics",
                }
            )
        ],
    )
    card = prepare_dataset(
        [reviews, meta], tmp_path / "o", PrepareConfig.for_dataset("electronics"), verbose=False
    )
    folder = tmp_path / "o" / "electronics"
    assert card["filters"]["k_core"] == 0 and card["source"] == "amazon2023"
    assert read_rows(folder / "electronics.inter")[1:] == [["U1", "P1", "3", f"{T2016}.25", "fine"]]
    assert read_rows(folder / "electronics.item")[1:] == [
        ["P1", "Cable", "Electronics, Cables", "Acme", "Fast. Long."]
    ]
    assert card["skips"]["Electronics.jsonl"] == {"below_min_rating": 1, "out_of_window": 1}


def yelp_review(
    user: str, biz: str, stars: float = 5.0, date: str = "2016-03-04 05:06:07", text: str = "yum"
):
    return json.dumps(
        {"review_id": "r", "user_id": user, "business_id": biz, "stars": stars, "date": date, "text": text}
    )


def test_yelp_with_split_files(tmp_path: Path) -> None:
    users = [f"u{k}" for k in range(10)]
    bizs = [f"b{k}" for k in range(10)]
    lines = [yelp_review(u, b) for u in users for b in bizs]
    lines += [
        yelp_review("u0", "b0", date="2016-13-01 00:00:00"),  # bad_value (month 13)
        yelp_review("u0", "b0", date="2014-12-31 23:59:59"),  # out_of_window
        yelp_review("u0", "b0", stars=3),  # below_min_rating
    ]
    reviews = write_lines(tmp_path / "yelp_academic_dataset_review.json", lines)
    business = write_lines(
        tmp_path / "yelp_academic_dataset_business.json",
        [
            json.dumps(
                {
                    "business_id": b,
                    "name": f"Cafe {b}",
                    "city": "Las Vegas",
                    "categories": "Food, Coffee & Tea",
                }
            )
            for b in bizs
        ],
    )
    card = prepare_dataset(
        [reviews, business], tmp_path / "o", PrepareConfig.for_dataset("yelp"), verbose=False
    )
    folder = tmp_path / "o" / "yelp"
    inter = read_rows(folder / "yelp.inter")
    assert inter[1] == ["u0", "b0", "5", str(calendar.timegm((2016, 3, 4, 5, 6, 7, 0, 0, 0))), "yum"]
    assert read_rows(folder / "yelp.item")[1] == ["b0", "Cafe b0", "Las Vegas", "Food, Coffee & Tea"]
    assert card["skips"]["yelp_academic_dataset_review.json"] == {
        "bad_value": 1,
        "below_min_rating": 1,
        "out_of_window": 1,
    }
    parts = {p: read_rows(folder / f"yelp.{p}.inter")[1:] for p in ("train", "valid", "test")}
    assert [len(parts[p]) for p in ("train", "valid", "test")] == [80, 10, 10]
    assert card["split"]["train"] == 80
    for user in users:  # 8:1:1 within every user
        assert [sum(r[0] == user for r in parts[p]) for p in ("train", "valid", "test")] == [8, 1, 1]
    all_pairs = sorted((r[0], r[1]) for p in parts.values() for r in p)
    assert all_pairs == sorted((r[0], r[1]) for r in inter[1:])


def recbole_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, data_path: Path, **extra):
    import recbole_hnlm.compat

    recbole_hnlm.compat.apply()
    from recbole.config import Config
    from recbole.data import create_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    yaml = REPO / "properties" / "dataset" / f"{name}.yaml"
    config = Config(
        model="BPR",
        dataset=name,
        config_file_list=[str(yaml)],
        config_dict={"data_path": str(data_path), "show_progress": False, **extra},
    )
    return create_dataset(config)


def test_prepared_files_load_in_recbole(tmp_path: Path, toys_raw: list[Path], monkeypatch) -> None:
    prepare_dataset(toys_raw, tmp_path / "out", toys_config(), verbose=False)
    ds = recbole_dataset(monkeypatch, tmp_path, "toys", tmp_path / "out")
    assert (ds.user_num - 1, ds.item_num - 1, ds.inter_num) == (2, 2, 4)
    assert set(ds.inter_feat.columns) == {"user_id", "item_id", "rating", "timestamp"}
    # Loading every column: the review text survives RecBole's reader as one token per review.
    ds = recbole_dataset(monkeypatch, tmp_path, "toys", tmp_path / "out", load_col=None)
    reviews = set(ds.field2id_token["review"].tolist())
    assert '\u201cQuoted" start with tab and newline' in reviews and "earliest dup wins" in reviews
    assert {"Toy", "X"} <= set(ds.field2id_token["title"].tolist())


def test_prepared_yelp_loads_benchmark_files(tmp_path: Path, monkeypatch) -> None:
    lines = [yelp_review(f"u{u}", f"b{b}") for u in range(10) for b in range(10)]
    reviews = write_lines(tmp_path / "review.json", lines)
    prepare_dataset([reviews], tmp_path / "o", PrepareConfig.for_dataset("yelp"), verbose=False)
    ds = recbole_dataset(monkeypatch, tmp_path, "yelp", tmp_path / "o")
    assert ds.file_size_list == [80, 10, 10]


def test_cli_run(tmp_path: Path, toys_raw: list[Path], capsys) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(
        [
            "--dataset",
            "toys",
            "--raw",
            *map(str, toys_raw),
            "--out",
            str(tmp_path / "o"),
            "--k-core",
            "2",
            "--quiet",
        ]
    )
    assert args.source is None and args.split_files is None
    assert run(args) == 0
    assert (tmp_path / "o" / "toys" / "toys.inter").is_file()
    args = parser.parse_args(
        [
            "--dataset",
            "toys",
            "--raw",
            *map(str, toys_raw),
            "--out",
            str(tmp_path / "s"),
            "--strict",
            "--quiet",
        ]
    )
    assert run(args) == 2
    assert "Toys_and_Games.json.gz:3" in capsys.readouterr().err
    args = parser.parse_args(["--dataset", "mine", "--raw", str(toys_raw[0]), "--quiet"])
    assert run(args) == 2
    assert "--source" in capsys.readouterr().err


@pytest.mark.parametrize("content", [[], ["{not json", "garbage"]])
def test_zero_interactions_is_an_error_and_writes_nothing(tmp_path: Path, content: list[str]) -> None:
    from recbole_hnlm.data.prepare.pipeline import EmptyDatasetError

    raw = write_lines(tmp_path / "Toys.json", content)
    with pytest.raises(EmptyDatasetError, match=r"Toys\.json: 0 interactions"):
        prepare_dataset([raw], tmp_path / "out", toys_config(k_core=0), verbose=False)
    assert not (tmp_path / "out" / "toys").exists()


def test_truncated_gzip_names_the_file(tmp_path: Path, toys_raw: list[Path]) -> None:
    data = toys_raw[0].read_bytes()
    cut = tmp_path / "Cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RawFormatError, match=r"Cut\.json\.gz: truncated or corrupt gzip"):
        prepare_dataset([cut], tmp_path / "out", toys_config(), verbose=False)
