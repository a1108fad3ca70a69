"""RLMRec-Con/Gen: profiles aligned by token, the losses, masking, and training on every backbone."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from recbole_hnlm.models.rlmrec import (
    GenerativeAlignment,
    ProfileError,
    ProfileMatrix,
    info_nce,
    load_profiles,
)
from recbole_hnlm.quick_start import run_hnlm
from tests.conftest import FAST, shared_dataset

BACKBONES = ["MF", "LightGCN", "NGCF", "SGL", "SimGCL"]
QUICK = {**FAST, "train_batch_size": 2048}


def write_profiles(folder, kind, tokens, vectors):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{kind}_embeddings.npy", np.asarray(vectors, dtype=np.float32))
    (folder / f"{kind}_tokens.txt").write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")


def keyword_vectors(texts, dim=24):
    """Hashed bag-of-words vectors: a stand-in text embedding computed in the test."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in str(text).split():
            out[row, zlib.crc32(word.encode()) % dim] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


@pytest.fixture(scope="module")
def slice_profiles(toys_slice, tmp_path_factory):
    """Profile embeddings for every user and item of the toys slice (items: keywords; users: their items)."""
    folder = tmp_path_factory.mktemp("artifacts") / "profiles"
    inter = pd.read_csv(
        next(p for p in _slice_files(toys_slice) if p.suffix == ".inter"), sep="\t", dtype=str
    )
    keywords = pd.read_csv(shared_dataset("toys") / "toys.item", sep="\t", dtype=str)
    words = dict(zip(keywords["item_id:token"], keywords["keywords:token_seq"].fillna("")))
    items = sorted(inter["item_id:token"].unique())
    item_vectors = keyword_vectors([f"{words.get(i, '')} {i}" for i in items])
    write_profiles(folder, "item", items, item_vectors)
    row = {item: k for k, item in enumerate(items)}
    users = sorted(inter["user_id:token"].unique())
    groups = inter.groupby("user_id:token")["item_id:token"].apply(list)
    user_vectors = np.stack([item_vectors[[row[i] for i in groups[u]]].mean(0) for u in users])
    write_profiles(folder, "user", users, user_vectors)
    return folder


def _slice_files(toys_slice):
    from pathlib import Path

    return list((Path(toys_slice["config"]["data_path"]) / toys_slice["dataset"]).iterdir())


ID_TOKENS = np.array(["[PAD]", "a", "b", "c"])


def test_profiles_align_to_internal_ids_by_token(tmp_path):
    write_profiles(tmp_path, "item", ["c", "a", "b"], [[3.0, 3.0], [1.0, 1.0], [2.0, 2.0]])
    loaded = load_profiles(tmp_path, "item", ID_TOKENS)
    assert loaded.emb.tolist() == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert loaded.has.tolist() == [False, True, True, True] and loaded.missing == 0


def test_profile_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(ProfileError, match=r"user_embeddings\.npy: not found"):
        load_profiles(tmp_path, "user", ID_TOKENS)
    write_profiles(tmp_path, "item", ["a", "zzz"], [[1.0], [2.0]])
    with pytest.raises(ProfileError, match=r"1 item tokens are not in the dataset, e.g. \['zzz'\]"):
        load_profiles(tmp_path, "item", ID_TOKENS)
    write_profiles(tmp_path, "item", ["a", "b"], [[1.0], [float("nan")]])
    with pytest.raises(ProfileError, match=r"NaN/inf values, e.g. row 1 \('b'\)"):
        load_profiles(tmp_path, "item", ID_TOKENS)
    write_profiles(tmp_path, "item", ["a", "b"], [[1.0], [2.0]])
    with pytest.raises(ProfileError, match=r"1 of 3 items have no profile embedding .* e.g. \['c'\]"):
        load_profiles(tmp_path, "item", ID_TOKENS)
    skipped = load_profiles(tmp_path, "item", ID_TOKENS, "skip")
    assert skipped.missing == 1 and skipped.has.tolist() == [False, True, True, False]
    (tmp_path / "item_tokens.txt").write_text("a\nb\nc\n")
    with pytest.raises(ProfileError, match=r"lists 3 tokens but .* has 2 rows"):
        load_profiles(tmp_path, "item", ID_TOKENS)
    write_profiles(tmp_path, "item", ["a", "a", "b"], [[1.0], [2.0], [3.0]])
    with pytest.raises(ProfileError, match="duplicate"):
        load_profiles(tmp_path, "item", ID_TOKENS)


def test_user_and_item_profile_dimensions_must_match():
    users = ProfileMatrix(torch.zeros(3, 4), torch.ones(3, dtype=torch.bool), 0)
    items = ProfileMatrix(torch.zeros(3, 5), torch.ones(3, dtype=torch.bool), 0)
    config = {"kd_weight": 0.1, "kd_temperature": 0.2}
    from recbole_hnlm.models.rlmrec import ContrastiveAlignment

    with pytest.raises(ProfileError, match="4-d but item ones are 5-d"):
        ContrastiveAlignment(config, users, items, dim=8)


def test_info_nce_matches_hand_computation():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    tau = 0.5
    c = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(c / tau)))
    row1 = -math.log(math.exp(c / tau) / (math.exp(0.0) + math.exp(c / tau)))
    assert info_nce(q, k, tau).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


class _Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.user_embedding = nn.Embedding(4, 3)
        self.item_embedding = nn.Embedding(5, 3)


def test_gen_masks_rows_with_the_token_only_inside_its_context():
    torch.manual_seed(0)
    model = _Backbone()
    original_users = model.user_embedding.weight.detach().clone()
    has_u, has_i = torch.tensor([False, True, True, True]), torch.tensor([False, True, True, True, True])
    users = ProfileMatrix(torch.randn(4, 6), has_u, 0)
    items = ProfileMatrix(torch.randn(5, 6), has_i, 0)
    config = {"recon_weight": 0.5, "recon_temperature": 0.2, "mask_ratio": 0.5}
    align = GenerativeAlignment(config, users, items, dim=3, model=model)
    with align.masking():
        masked_users, masked_items = align._masked
        weight = model.user_embedding.weight
    assert masked_users.numel() + masked_items.numel() == 3  # half of the 7 nodes with a profile
    assert bool((masked_users > 0).all()) and bool((masked_items > 0).all())
    for row in range(4):
        expected = align.mask_token[0] if row in masked_users.tolist() else original_users[row]
        assert torch.equal(weight[row].detach(), expected.detach())
    assert torch.equal(model.user_embedding.weight.detach(), original_users)  # restored after the context


@pytest.mark.parametrize("alignment", ["rlmrec-con", "rlmrec-gen"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_backbone_trains_one_epoch_with_rlmrec(backbone, alignment, toys_slice, slice_profiles, in_tmp):
    config = {**QUICK, **toys_slice["config"], "profile_embeddings": str(slice_profiles)}
    record = run_hnlm(backbone, toys_slice["dataset"], alignment, config_dict=config, saved=False)
    assert record["config"]["alignment"] == alignment
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in record["test_result"].values())


def test_rlmrec_alignment_is_a_trained_loss_term(toys_slice, slice_profiles, in_tmp):
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from recbole_hnlm.config import make_config

    for alignment, module in (("rlmrec-con", "encoder"), ("rlmrec-gen", "decoder")):
        cfg = {
            **QUICK,
            **toys_slice["config"],
            "profile_embeddings": str(slice_profiles),
            "alignment": alignment,
        }
        config = make_config("HNLMLightGCN", toys_slice["dataset"], config_dict=cfg)
        init_seed(config["seed"], config["reproducibility"])
        train, _, _ = data_preparation(config, create_dataset(config))
        model = get_model("HNLMLightGCN")(config, train._dataset)
        before = {k: v.clone() for k, v in model.profile_alignment.named_parameters()}
        assert any(k.startswith(module) for k in before)
        loss = get_trainer(config["MODEL_TYPE"], "HNLMLightGCN")(config, model)._train_epoch(train, 0)
        assert isinstance(loss, tuple) and len(loss) == 2 and loss[1] > 0
        after = dict(model.profile_alignment.named_parameters())
        assert all(not torch.equal(before[k], after[k]) for k in before)
        # the profile matrices are not written into checkpoints
        assert not any("profiles" in k for k in model.state_dict())


def test_missing_profile_folder_is_a_clear_error(toys_slice, in_tmp, tmp_path):
    config = {**QUICK, **toys_slice["config"], "profile_embeddings": str(tmp_path / "none")}
    with pytest.raises(ProfileError, match=r"user_embeddings\.npy: not found"):
        run_hnlm("LightGCN", toys_slice["dataset"], "rlmrec-con", config_dict=config, saved=False)
