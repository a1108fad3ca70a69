"""quick_start: the validation trace (best epoch), semdns and aligndns runs end to end with their sampler
reports, strict result.json and no run folder left by a failed run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from recbole.data import create_dataset

from recbole_hnlm import quick_start
from recbole_hnlm.config import make_config
from recbole_hnlm.negatives.item_vectors import write_item_vectors
from recbole_hnlm.quick_start import ValidationTrace, run_hnlm
from tests.conftest import FAST


def test_the_trace_keeps_the_epoch_of_the_checkpoint_recbole_tests_and_calls_on():
    from recbole.utils import early_stopping

    seen = []
    trace = ValidationTrace(True, lambda epoch, score: seen.append((epoch, score)))
    scores = [(4, 0.1), (9, 0.3), (14, 0.3), (19, 0.2)]
    best, saved = -float("inf"), None
    for epoch, score in scores:
        trace(epoch, score)
        best, _, _, update = early_stopping(score, best, 0, 10, bigger=True)
        saved = epoch if update else saved  # RecBole saves the checkpoint when it updates
    # a tie is an update for RecBole, so the checkpoint tested is epoch 14's
    assert (trace.best_epoch, trace.best_score, trace.last_epoch) == (14, 0.3, 19) and saved == 14
    assert seen == scores
    smaller = ValidationTrace(False)
    for epoch, score in [(0, 2.0), (1, 1.0), (2, 1.5), (3, 1.0)]:
        smaller(epoch, score)
    assert smaller.best_epoch == 3


def test_semdns_trains_and_reports_its_semantic_picks_and_best_epoch(toys_slice, in_tmp):
    config = {**FAST, **toys_slice["config"], "epochs": 2, "eval_step": 1, "semdns_k": 4}
    data = create_dataset(make_config("HNLMLightGCN", toys_slice["dataset"], config_dict=config))
    tokens = [str(t) for t in data.field2id_token[data.iid_field][1:]]
    vectors = np.random.default_rng(1).normal(size=(len(tokens), 6))
    folder = write_item_vectors(in_tmp / "vectors", tokens, vectors, {"dataset": toys_slice["dataset"]})
    config["item_vectors"] = str(folder)
    record = run_hnlm("LightGCN", toys_slice["dataset"], "semdns", config_dict=config, saved=False)
    assert record["neg_sampler"] == "semdns"
    report = record["sampler_report"]
    assert 0.0 < report["semantic_pick_share"] < 1.0
    assert set(report["semantic_pick_share_by_epoch"]) == {"0", "1"}  # as result.json has it
    assert 0.0 <= report["semantic_pool_redrawn_share"] < 1.0
    assert record["best_epoch"] in (0, 1) and record["epochs_trained"] == 2 and record["epoch_cap"] == 2


def test_aligndns_trains_mf_and_reports_its_text_map_and_changed_picks(toys_slice, in_tmp):
    config = {**FAST, **toys_slice["config"], "epochs": 2, "eval_step": 1, "aligndns_candidates": 8}
    data = create_dataset(make_config("HNLMBPR", toys_slice["dataset"], config_dict=config))
    tokens = [str(t) for t in data.field2id_token[data.iid_field][1:]]
    vectors = np.random.default_rng(2).normal(size=(len(tokens), 12))
    folder = write_item_vectors(in_tmp / "vectors", tokens, vectors, {"dataset": "slice"})
    config["item_vectors"] = str(folder)
    record = run_hnlm("MF", toys_slice["dataset"], "aligndns", config_dict=config, saved=False)
    report = record["sampler_report"]
    # the default beta steers the query, so some picks differ from DNS(M,N)'s, not all
    assert 0.0 < report["text_changed_pick_share"] < 1.0
    assert set(report["text_map_r2_by_epoch"]) == {"0", "1"}  # refitted every epoch
    assert all(r2 <= 1.0 for r2 in report["text_map_r2_by_epoch"].values())


def test_the_default_sampler_builds_its_item_vectors_and_trains_aligndns(toys_slice, in_tmp, monkeypatch):
    """run_hnlm's default (``hnlm``) runs the default design: item vectors made once when unset, then
    aligndns, recorded under both names."""
    import recbole_hnlm.pipeline as pipeline

    built = []

    def fake_item_vectors(config):
        data = create_dataset(config)
        tokens = [str(t) for t in data.field2id_token[data.iid_field][1:]]
        vectors = np.random.default_rng(3).normal(size=(len(tokens), 12))
        built.append(len(tokens))
        return write_item_vectors(in_tmp / "vectors", tokens, vectors, {"dataset": "slice"})

    monkeypatch.setattr(pipeline, "ensure_item_vectors", fake_item_vectors)
    config = {**FAST, **toys_slice["config"], "epochs": 1, "eval_step": 1, "aligndns_candidates": 8}
    record = run_hnlm("LightGCN", toys_slice["dataset"], config_dict=config, saved=False)
    assert len(built) == 1 and built[0] > 0
    assert (record["sampler"], record["neg_sampler"]) == ("hnlm", "aligndns")
    assert record["config"]["item_vectors"] == str((in_tmp / "vectors").resolve())
    assert set(record["sampler_report"]["text_map_r2_by_epoch"]) == {"0"}


def _refuse_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def test_an_unvalidated_run_writes_strict_json(toys_slice, in_tmp, capsys):
    # eval_step 0: RecBole validates no epoch, so the best valid score stays -inf (was written as -Infinity).
    config = {**FAST, **toys_slice["config"], "eval_step": 0}
    record = run_hnlm("LightGCN", toys_slice["dataset"], "rns", config_dict=config)
    text = (Path(record["run_dir"]) / "result.json").read_text()
    written = json.loads(text, parse_constant=_refuse_constant)
    assert written["best_valid_score"] is None and written["best_valid_result"] is None
    assert set(written["test_result"]) >= {"recall@20", "ndcg@20"}
    assert "best valid:\n(not evaluated" in capsys.readouterr().out


def test_a_failed_run_leaves_no_run_folder(toys_slice, in_tmp, monkeypatch):
    def fails_after_logging(config, *, saved, log_dir):
        (Path(log_dir) / "log").mkdir(parents=True)
        (Path(log_dir) / "log" / "run.log").write_text("started\n")
        raise RuntimeError("the model diverged")

    monkeypatch.setattr(quick_start, "train_and_evaluate", fails_after_logging)
    with pytest.raises(RuntimeError, match="diverged"):
        run_hnlm("LightGCN", toys_slice["dataset"], "rns", config_dict={**FAST, **toys_slice["config"]})
    runs = in_tmp / "runs"
    assert not runs.exists() or list(runs.rglob("*")) == []


def test_one_build_serves_train_tune_and_the_bench(in_tmp, monkeypatch):
    """build_run_config: the method's entries over the overrides, a missing store built once and read into
    the config, its path kept as the pipeline returned it (the bench keys its cells on it)."""
    import recbole_hnlm.pipeline as pipeline
    from recbole_hnlm.quick_start import build_run_config

    built = []

    def fake_store(config):
        built.append(config["semantic_alpha"])
        return Path("artifacts") / config["dataset"] / "negatives" / "hnlm"

    monkeypatch.setattr(pipeline, "ensure_hnlm_store", fake_store)
    run = build_run_config("HNLMBPR", "ml-100k", "hnlm-mix", overrides={"semantic_alpha": 0.3})
    assert built == [0.3] and run.store == str(Path("artifacts/ml-100k/negatives/hnlm"))
    assert run.config["semantic_negatives"] == str((in_tmp / run.store).resolve())
    assert run.overrides == {"semantic_alpha": 0.3, "semantic_negatives": run.config["semantic_negatives"]}
    hard = build_run_config("HNLMBPR", "ml-100k", "dns", negatives="given")
    assert built == [0.3] and hard.store == "given" and hard.config["neg_sampler"] == "dns"
