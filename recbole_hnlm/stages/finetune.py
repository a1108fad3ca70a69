"""HNLMRec step 3b: LoRA fine-tuning of the embedder on the collaborative supervision (peft).

Objective (the paper's, over in-batch negatives): for query q_b, its target p_b (the text of the mined hard
negative j) and every negative n_k of the batch (the texts of the interacted items)::

    L = mean_{b,k}  −log σ( (cos(q_b, p_b) − cos(q_b, n_k)) / τ )

The adapter is saved with its :class:`~recbole_hnlm.llm.embedding_model.EmbedderSpec` (model, pooling,
templates, max lengths) in ``<artifact_dir>/<dataset>/embedder/``; inference reads that spec, so the two
always pool and template identically. Training checkpoints (adapter + optimizer + position) go to
``embedder.ckpt/`` every ``hnlm_ft_save_steps`` steps and at each epoch end; a rerun resumes from there.
Shuffling is seeded per epoch and dropout per step, so a resumed run takes the same steps.
``hnlm_ft_max_steps`` stops after that many steps of the same shuffle. With ``hnlm_embedder_precision``
resolving to bf16 the forward's matmuls run in bf16 (weights, AdamW state and loss stay fp32); the resolved
precision is one of the settings, so it is part of the adapter's fingerprint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from recbole_hnlm.config_values import RECBOLE_SEED, config_value, default_of, settings_values
from recbole_hnlm.data.splits import split_seed
from recbole_hnlm.io import atomic_directory, check_replaceable, fingerprint, under_artefact_lock
from recbole_hnlm.llm.cpu_runtime import resolve_precision
from recbole_hnlm.llm.embedding_model import (
    EMBEDDER_FORMAT,
    SPEC_FILE,
    EmbedderSpec,
    EmbeddingModel,
    legacy_embedder_info,
    read_adapter_info,
)
from recbole_hnlm.stages.cli import configure_finetune as configure_parser  # noqa: F401

EMBEDDER_DIR = "embedder"


@dataclass(frozen=True)
class FinetuneSettings:
    """Config keys (the field names; defaults: ``properties/overall.yaml``) of the fine-tuning stage."""

    hnlm_embedder_model: str = default_of("hnlm_embedder_model")
    hnlm_ft_epochs: int = default_of("hnlm_ft_epochs")
    hnlm_ft_max_steps: int | None = default_of("hnlm_ft_max_steps")
    hnlm_ft_batch_size: int = default_of("hnlm_ft_batch_size")
    hnlm_ft_lr: float = default_of("hnlm_ft_lr")
    hnlm_ft_weight_decay: float = default_of("hnlm_ft_weight_decay")
    hnlm_ft_tau: float = default_of("hnlm_ft_tau")
    hnlm_ft_save_steps: int = default_of("hnlm_ft_save_steps")
    hnlm_ft_eval_fraction: float = default_of("hnlm_ft_eval_fraction")
    hnlm_lora_r: int = default_of("hnlm_lora_r")
    hnlm_lora_alpha: int = default_of("hnlm_lora_alpha")
    hnlm_lora_dropout: float = default_of("hnlm_lora_dropout")
    hnlm_query_max_len: int = default_of("hnlm_query_max_len")
    hnlm_passage_max_len: int = default_of("hnlm_passage_max_len")
    hnlm_embedder_precision: str = default_of("hnlm_embedder_precision")
    seed: int = RECBOLE_SEED

    def __post_init__(self) -> None:
        # what runs, not "auto": the adapter's fingerprint then says which arithmetic trained it
        precision = resolve_precision(self.hnlm_embedder_precision)
        object.__setattr__(self, "hnlm_embedder_precision", precision)
        budget = self.hnlm_ft_max_steps
        if budget is not None and int(budget) < 1:
            raise ValueError(f"config key 'hnlm_ft_max_steps' must be >= 1 or ~, got {budget}")

    @classmethod
    def resolve(cls, config: Any, overrides: Mapping[str, Any] | None = None) -> FinetuneSettings:
        values = settings_values(cls, lambda name: (overrides or {}).get(name, config_value(config, name)))
        if "seed" not in (overrides or {}):
            values["seed"] = split_seed(config)  # like the supervision it trains on: the split's seed
        return cls(**values)

    def spec(self) -> EmbedderSpec:
        return EmbedderSpec.for_model(
            self.hnlm_embedder_model,
            query_max_len=self.hnlm_query_max_len,
            passage_max_len=self.hnlm_passage_max_len,
            lora_r=self.hnlm_lora_r,
            lora_alpha=self.hnlm_lora_alpha,
            lora_dropout=self.hnlm_lora_dropout,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pairwise_contrastive_loss(q: torch.Tensor, p: torch.Tensor, n: torch.Tensor, tau: float) -> torch.Tensor:
    """``mean_{b,k} −log σ((cos(q_b,p_b) − cos(q_b,n_k))/τ)`` for L2-normalised [B, d] ``q, p, n``."""
    pos = (q * p).sum(-1, keepdim=True)  # [B, 1]
    neg = q @ n.T  # [B, B]: every negative of the batch
    return F.softplus(-(pos - neg) / tau).mean()


def contrastive_step(
    model: EmbeddingModel,
    optimizer: torch.optim.Optimizer,
    rows: Sequence[Mapping[str, str]],
    tau: float,
) -> float:
    """One optimizer step of :func:`pairwise_contrastive_loss` on ``rows`` (query, positive and negative
    texts, each encoded with gradients); returns the loss."""
    q = model.encode([r["query"] for r in rows], "query")
    p = model.encode([r["positive"] for r in rows], "passage")
    n = model.encode([r["negative"] for r in rows], "passage")
    loss = pairwise_contrastive_loss(q, p, n, tau)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def similarity_gap(
    model: EmbeddingModel, triples: Sequence[Mapping[str, str]], batch_size: int = 32
) -> float:
    """Mean of cos(q, p) − cos(q, n) over ``triples``: how much closer queries sit to their hard negative."""
    if not triples:
        return float("nan")
    q = model.embed([t["query"] for t in triples], "query", batch_size=batch_size)
    p = model.embed([t["positive"] for t in triples], "passage", batch_size=batch_size)
    n = model.embed([t["negative"] for t in triples], "passage", batch_size=batch_size)
    return float(((q * p).sum(-1) - (q * n).sum(-1)).mean())


def _save_torch(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _trainable(model: EmbeddingModel) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.model.named_parameters() if p.requires_grad}


def split_holdout(
    triples: Sequence[Mapping[str, str]], fraction: float, seed: int
) -> tuple[list[Mapping[str, str]], list[Mapping[str, str]]]:
    """(train, held-out) with the held-out share drawn by a seeded permutation (none when fraction is 0)."""
    n_eval = round(len(triples) * fraction) if fraction > 0 else 0
    n_eval = min(n_eval, max(0, len(triples) - 1))
    order = np.random.default_rng(seed).permutation(len(triples))
    held = {int(k) for k in order[:n_eval]}
    train = [t for k, t in enumerate(triples) if k not in held]
    return train, [triples[k] for k in sorted(held)]


@under_artefact_lock(lambda out_dir, **_: out_dir)
def finetune(
    triples: Sequence[Mapping[str, str]],
    out_dir: str | Path,
    settings: FinetuneSettings,
    *,
    info: Mapping[str, Any] | None = None,
    progress: bool = True,
    stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on ``(query, positive, negative)`` triples and save it atomically to ``out_dir``.

    Under the adapter's lock: a second run training into ``out_dir`` waits (its checkpoint folder
    ``<out_dir>.ckpt`` is removed by whoever finishes).
    Resumes from ``<out_dir>.ckpt`` when it holds a checkpoint of the same run (same triples and settings).
    ``stop_after_steps`` stops (raising ``KeyboardInterrupt``) after that many new steps: for tests.
    Returns the training log (losses, held-out similarity gap before/after, seconds).
    """
    out_dir = Path(out_dir)
    check_replaceable(out_dir, EMBEDDER_FORMAT, marker=SPEC_FILE, legacy=legacy_embedder_info)
    ckpt_dir = out_dir.with_name(out_dir.name + ".ckpt")
    spec = settings.spec()
    train, held = split_holdout(triples, settings.hnlm_ft_eval_fraction, settings.seed)
    if not train:
        raise ValueError("fine-tuning needs at least one training triple")
    run_fp = fingerprint([spec.as_dict(), settings.as_dict(), [list(t.values()) for t in triples]])
    torch.manual_seed(settings.seed)
    model = EmbeddingModel.create(spec, precision=settings.hnlm_embedder_precision)
    params = _trainable(model)
    optimizer = torch.optim.AdamW(
        list(params.values()), lr=settings.hnlm_ft_lr, weight_decay=settings.hnlm_ft_weight_decay
    )
    state_file = ckpt_dir / "state.pt"
    log: dict[str, Any] = {"losses": [], "epoch": 0, "step": 0, "resumed_from_step": 0}
    if state_file.is_file():
        state = torch.load(state_file, map_location="cpu", weights_only=True)  # tensors, numbers, lists
        if state.get("fingerprint") == run_fp:
            with torch.no_grad():
                for name, value in state["params"].items():
                    params[name].copy_(value)
            optimizer.load_state_dict(state["optimizer"])
            log = state["log"]
            log["resumed_from_step"] = log["step"]
            print(f"[finetune] resuming from {state_file} at epoch {log['epoch']}, step {log['step']}")
    if "gap_before" not in log:
        log["gap_before"] = similarity_gap(model, held)
    batch = max(1, settings.hnlm_ft_batch_size)
    steps_per_epoch = (len(train) + batch - 1) // batch
    total = steps_per_epoch * settings.hnlm_ft_epochs
    if settings.hnlm_ft_max_steps is not None:
        total = min(total, int(settings.hnlm_ft_max_steps))
    start_time = time.perf_counter()
    done_here = 0
    bar = tqdm(total=total, initial=log["step"], desc="finetune", unit="step", disable=not progress)

    def checkpoint() -> None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        snapshot = {n: p.detach().clone() for n, p in params.items()}
        _save_torch(
            {"fingerprint": run_fp, "params": snapshot, "optimizer": optimizer.state_dict(), "log": log},
            state_file,
        )

    try:
        model.model.train()
        for epoch in range(log["epoch"], settings.hnlm_ft_epochs):
            order = np.random.default_rng(settings.seed + epoch).permutation(len(train))
            first = log["step"] - epoch * steps_per_epoch
            for k in range(max(0, first), steps_per_epoch):
                if log["step"] >= total:  # hnlm_ft_max_steps reached mid-epoch
                    break
                rows = [train[int(r)] for r in order[k * batch : (k + 1) * batch]]
                torch.manual_seed(settings.seed * 1000003 + log["step"])
                value = contrastive_step(model, optimizer, rows, settings.hnlm_ft_tau)
                log["losses"].append(round(value, 6))
                log["step"] += 1
                done_here += 1
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                if settings.hnlm_ft_save_steps > 0 and log["step"] % settings.hnlm_ft_save_steps == 0:
                    checkpoint()
                if stop_after_steps is not None and done_here >= stop_after_steps:
                    checkpoint()
                    raise KeyboardInterrupt(f"stopped after {done_here} steps (stop_after_steps)")
            log["epoch"] = epoch + 1
            checkpoint()
            if log["step"] >= total:
                break
    finally:
        bar.close()
    model.model.eval()
    log["gap_after"] = similarity_gap(model, held)
    log["held_out"] = len(held)
    log["train_triples"] = len(train)
    log["seconds"] = round(log.get("seconds", 0.0) + time.perf_counter() - start_time, 1)
    with atomic_directory(out_dir, EMBEDDER_FORMAT, marker=SPEC_FILE, legacy=legacy_embedder_info) as tmp:
        model.save(tmp, info={"fingerprint": run_fp, "settings": settings.as_dict(), **(info or {})})
        (tmp / "train_log.json").write_text(json.dumps(log, indent=2) + "\n")
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    print(
        f"[finetune] {log['step']} steps, loss {log['losses'][0]:.4f} -> {log['losses'][-1]:.4f}; held-out "
        f"gap cos(q,j)-cos(q,i) {log['gap_before']:.4f} -> {log['gap_after']:.4f}; adapter -> {out_dir}"
    )
    return log


def finetune_fingerprint(supervision_fp: str, settings: FinetuneSettings) -> str:
    return fingerprint([supervision_fp, settings.as_dict(), settings.spec().as_dict()])


@under_artefact_lock(lambda root, **_: Path(root) / EMBEDDER_DIR)
def ensure_embedder(config: Any, root: Path, *, progress: bool = True, force: bool = False) -> Path:
    """``<root>/embedder``: reused when it was trained on the current supervision with these settings.

    Checked under the adapter's lock: a concurrent run waits for this one's adapter, then reuses it."""
    from recbole_hnlm.stages.supervision import SUPERVISION_DIR, read_meta, read_triples

    sup_dir = root / SUPERVISION_DIR
    sup_meta = read_meta(sup_dir)
    if sup_meta is None:
        raise FileNotFoundError(f"{sup_dir / 'meta.json'} not found: build the supervision set first")
    settings = FinetuneSettings.resolve(config)
    key = finetune_fingerprint(sup_meta["fingerprint"], settings)
    out = root / EMBEDDER_DIR
    if (
        not force
        and (out / "embedder.json").is_file()
        and read_adapter_info(out).get("stage_fingerprint") == key
    ):
        return out
    triples = read_triples(sup_dir)
    finetune(
        triples,
        out,
        settings,
        info={
            "stage_fingerprint": key,
            "dataset": sup_meta["dataset"],
            "dataset_fingerprint": sup_meta["dataset_fingerprint"],
            "supervision_fingerprint": sup_meta["fingerprint"],
            "supervision_settings": sup_meta.get("settings", {}),
        },
        progress=progress,
    )
    return out


def run(args: argparse.Namespace) -> int:
    from recbole_hnlm.stages.common import artifact_dir, stage_config
    from recbole_hnlm.stages.supervision import build_supervision

    config = stage_config(args)
    root = artifact_dir(config)
    build_supervision(config, root, progress=not args.no_progress, force=args.force)
    out = ensure_embedder(config, root, progress=not args.no_progress, force=args.force)
    print(f"adapter: {out}")
    return 0
