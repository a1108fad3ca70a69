"""The dataset registry, the missing-files error, and the stand-ins loading through the dataset yaml."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from recbole_hnlm.data.datasets import DATASETS, DatasetNotFoundError, check_dataset_files, how_to_prepare

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
YAMLS = REPO / "properties" / "dataset"


def test_registry_names_and_yaml_files() -> None:
    assert set(DATASETS) == {"toys", "cds", "yelp", "electronics", "fashion", "ml-1m", "ml-100k"}
    for name in DATASETS:
        assert (YAMLS / f"{name}.yaml").is_file(), name
    assert DATASETS["toys"].k_core == 10 and DATASETS["toys"].min_rating == 4.0
    assert DATASETS["electronics"].source == "amazon2023" and DATASETS["electronics"].min_rating == 3.0


def test_missing_files_error_says_how_to_prepare(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        check_dataset_files("toys", tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "toys" / "toys.inter") in message
    assert (
        "recbole-hnlm prepare --dataset toys --raw Toys_and_Games.json.gz meta_Toys_and_Games.json.gz"
        in message
    )
    assert "--data_path" in message


def test_benchmark_layout_is_checked(tmp_path: Path) -> None:
    folder = tmp_path / "yelp"
    folder.mkdir()
    (folder / "yelp.train.inter").write_text("user_id:token\titem_id:token\n")
    config = {"benchmark_filename": ["train", "valid", "test"]}
    with pytest.raises(DatasetNotFoundError, match=r"yelp\.valid\.inter.*yelp\.test\.inter") as info:
        check_dataset_files("yelp", tmp_path, config)
    assert "yelp_academic_dataset_review.json" in str(info.value)
    (folder / "yelp.valid.inter").write_text("user_id:token\titem_id:token\n")
    (folder / "yelp.test.inter").write_text("user_id:token\titem_id:token\n")
    check_dataset_files("yelp", tmp_path, config)
    check_dataset_files("yelp", folder, config)  # RecBole's resolved <data_path>/<name> works too


def test_present_unknown_and_embedded(tmp_path: Path) -> None:
    check_dataset_files("ml-100k", tmp_path / "nowhere")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "mine.inter").write_text("user_id:token\titem_id:token\n")
    check_dataset_files("mine", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="not a dataset this plugin prepares"):
        check_dataset_files("other", tmp_path)
    assert "ml-1m.zip" in how_to_prepare("ml-1m")


def load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str):
    import recbole_hnlm.compat

    recbole_hnlm.compat.apply()
    from recbole.config import Config
    from recbole.data import create_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    config = Config(
        model="BPR",
        dataset=name,
        config_file_list=[str(YAMLS / f"{name}.yaml")],
        config_dict={"data_path": str(SHARED), "show_progress": False},
    )
    check_dataset_files(name, SHARED, config)
    return config, create_dataset(config)


@pytest.mark.skipif(not (SHARED / "toys" / "toys.inter").is_file(), reason="shared stand-in data absent")
def test_toys_standin_loads_through_toys_yaml(tmp_path: Path, monkeypatch) -> None:
    config, ds = load(monkeypatch, tmp_path, "toys")
    assert (ds.user_num - 1, ds.item_num - 1, ds.inter_num) == (19412, 11924, 167597)
    assert set(ds.inter_feat.columns) == {"user_id", "item_id", "timestamp"}  # no rating in the stand-in
    assert config["eval_args"]["split"] == {"RS": [0.8, 0.1, 0.1]}
    assert config["text_fields"] == ["title", "categories", "brand", "description"]


@pytest.mark.skipif(
    not (SHARED / "yelp" / "yelp.train.inter").is_file(), reason="shared stand-in data absent"
)
def test_yelp_standin_loads_benchmark_files(tmp_path: Path, monkeypatch) -> None:
    _, ds = load(monkeypatch, tmp_path, "yelp")
    assert ds.file_size_list == [166620, 55479, 55436]


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "ml-1m" / "ml-1m.inter").is_file(), reason="shared stand-in data absent")
def test_ml1m_standin_loads(tmp_path: Path, monkeypatch) -> None:
    config, ds = load(monkeypatch, tmp_path, "ml-1m")
    assert ds.inter_num == 1000209
    assert config["text_fields"] == ["movie_title", "release_year", "genre"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("user_id:token\titem\ttimestamp:float", r"line 1: column\(s\) \['item'\] have no type"),
        ("user_id:token\ttimestamp:float", r"line 1: no column \['item_id'\]"),
        ("", r"line 1: the file is empty"),
    ],
)
def test_a_malformed_inter_header_names_the_file_and_the_field(tmp_path: Path, header, message) -> None:
    from recbole_hnlm.data.datasets import AtomicFileError

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mine.inter").write_text(f"{header}\nu1\t7\t0\n" if header else "")
    with pytest.raises(AtomicFileError, match=rf"{folder / 'mine.inter'}, {message}"):
        check_dataset_files("mine", tmp_path)
    # other ID column names are read from the config
    (folder / "mine.inter").write_text("uid:token\tiid:token\nu1\t7\n")
    check_dataset_files("mine", tmp_path, {"USER_ID_FIELD": "uid", "ITEM_ID_FIELD": "iid"})
