"""Stage 2: prompt-only semantic negatives (the paper's v1 pipeline).

``--mode interaction`` (default, the paper's): for each training interaction (u, i) the LLM names one
item close to u's taste and to i that u would still not want. ``--mode user`` (cheaper): one request
per user names ``k`` such items, shared round-robin by the user's interactions. Each name is embedded
(one batched call over the distinct names) and written with the store format of
``recbole_hnlm.negatives.store`` to ``<artifact_dir>/<dataset>/negatives/prompt``.

A "None" answer, an answer that never parses, a server failure, or a user with no usable profile
gives *no row*: it is counted in the report (``prompt.report.json``) and never replaced by noise.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recbole_hnlm.config_values import default_of, setting
from recbole_hnlm.io import atomic_write_json, atomic_write_text, config_fingerprint
from recbole_hnlm.llm.backends import ChatBackend
from recbole_hnlm.llm.cache import RequestCache
from recbole_hnlm.llm.embedders import Embedder
from recbole_hnlm.llm.parsing import is_none_answer, is_template_echo, negative_task, negatives_task
from recbole_hnlm.llm.prompts import hard_negative_messages, per_user_negative_messages
from recbole_hnlm.stages.cli import NEGATIVE_MODES
from recbole_hnlm.stages.cli import configure_negatives as configure_parser  # noqa: F401  (recbole-hnlm negatives)
from recbole_hnlm.stages.common import LLMSettings, TrainingView, artifact_root, shaping_settings
from recbole_hnlm.stages.profiles import checked_profiles_meta, usable_summaries
from recbole_hnlm.stages.runner import LLMRequest, StageReport, run_stage

MODES = NEGATIVE_MODES
PRODUCER = "prompt_negatives"


def interaction_negatives(
    view: TrainingView,
    user_profiles: Mapping[str, str],
    item_profiles: Mapping[str, str],
    backend: ChatBackend,
    cache: RequestCache,
    settings: LLMSettings,
    *,
    progress: bool = True,
) -> tuple[list[tuple[str, str, str]], StageReport, Counter]:
    """(user, item, negative name) per answered training interaction, the report, and skip counts."""
    skips: Counter = Counter()
    task = negative_task(settings.negative_reasoning_chars)
    requests: list[LLMRequest] = []
    pairs: dict[str, tuple[str, str]] = {}
    for user, items in view.histories.items():
        for item in dict.fromkeys(items):  # repeated interactions share one key in the store
            if user not in user_profiles:
                skips["no_user_profile"] += 1
                continue
            rid = f"{user}\t{item}"
            pairs[rid] = (user, item)
            messages = hard_negative_messages(
                user_profiles[user],
                view.items[item],
                item_profiles.get(item),
                settings.budget,
                settings.item_noun,
            )
            requests.append(LLMRequest(rid, messages, task))
    outcomes, report = run_stage("prompt negatives", requests, backend, cache, settings, progress=progress)
    rows: list[tuple[str, str, str]] = []
    for rid, outcome in outcomes.items():
        name = (outcome.value or {}).get("hard_negative_item")
        if outcome.status == "failed":
            continue
        if is_none_answer(name):
            skips["none_answer"] += 1
            continue
        if is_template_echo(name):
            skips["template_echo"] += 1
            continue
        rows.append((*pairs[rid], name.strip()))
    return rows, report, skips


def user_negatives(
    view: TrainingView,
    user_profiles: Mapping[str, str],
    backend: ChatBackend,
    cache: RequestCache,
    settings: LLMSettings,
    k: int,
    *,
    progress: bool = True,
) -> tuple[list[tuple[str, str, str]], StageReport, Counter]:
    skips: Counter = Counter()
    task = negatives_task(k, settings.negative_reasoning_chars)
    requests = []
    for user, items in view.histories.items():
        if user not in user_profiles:
            skips["no_user_profile"] += len(dict.fromkeys(items))
            continue
        titles = [view.items[i].title for i in items if i in view.items]
        messages = per_user_negative_messages(
            user_profiles[user], titles, k, settings.budget, settings.item_noun
        )
        requests.append(LLMRequest(user, messages, task))
    outcomes, report = run_stage(
        "prompt negatives (per user)", requests, backend, cache, settings, progress=progress
    )
    rows: list[tuple[str, str, str]] = []
    for user, outcome in outcomes.items():
        if outcome.status == "failed":
            continue
        interactions = list(dict.fromkeys(view.histories[user]))
        answered = [n for n in outcome.value.get("hard_negative_items", []) if not is_none_answer(n)]
        names = [n.strip() for n in answered if not is_template_echo(n)]
        if len(names) < len(answered):  # counted by name: the user's other names still give rows
            skips["template_echo_names"] += len(answered) - len(names)
        if not names:
            skips["template_echo" if answered else "none_answer"] += len(interactions)
            continue
        rows += [(user, item, names[j % len(names)]) for j, item in enumerate(interactions)]
    return rows, report, skips


def write_negatives(
    root: Path,
    rows: list[tuple[str, str, str]],
    embedder: Embedder,
    *,
    dataset: str,
    dataset_fingerprint: str,
    config: Mapping[str, Any],
    details: Mapping[str, Any],
) -> None:
    from recbole_hnlm.negatives.store import write_store

    names = sorted({name for _, _, name in rows})
    vectors = embedder.embed(names) if names else np.zeros((0, 1), dtype=np.float32)
    index = {name: k for k, name in enumerate(names)}
    matrix = vectors[[index[n] for _, _, n in rows]] if rows else vectors[:0]
    write_store(
        root / "negatives" / "prompt",
        [u for u, _, _ in rows],
        [i for _, i, _ in rows],
        matrix,
        producer=PRODUCER,
        dataset=dataset,
        dataset_fingerprint=dataset_fingerprint,
        config=config,
        details={
            **details,
            "embedder": {"name": embedder.name, "model": embedder.model},
            "distinct_names": len(names),
        },
    )
    lines = "".join(
        json.dumps({"user": u, "item": i, "negative": n}, ensure_ascii=False) + "\n" for u, i, n in rows
    )
    atomic_write_text(root / "negatives" / "prompt.names.jsonl", lines)


def negatives_config(settings: LLMSettings, mode: str, k: int) -> dict[str, Any]:
    """What a prompt store's ``config_fingerprint`` covers: the LLM settings, the mode and K."""
    return {**shaping_settings(settings), "mode": mode, "k": k}


def generate_negatives(
    view: TrainingView,
    backend: ChatBackend,
    embedder: Embedder,
    settings: LLMSettings,
    root: Path,
    *,
    mode: str = default_of("prompt_negatives_mode"),
    k: int = default_of("prompt_negatives_k"),
    progress: bool = True,
) -> dict[str, Any]:
    if mode not in MODES:
        raise ValueError(f"unknown negatives mode {mode!r}; choose one of {MODES}")
    checked_profiles_meta(root / "profiles", view)  # stage 1's, for this dataset and split
    users, items = usable_summaries(root / "profiles")
    with RequestCache(root / "llm_cache" / "negatives.jsonl") as cache:
        if mode == "interaction":
            rows, report, skips = interaction_negatives(
                view, users, items, backend, cache, settings, progress=progress
            )
        else:
            rows, report, skips = user_negatives(view, users, backend, cache, settings, k, progress=progress)
    report.extra = {
        "mode": mode,
        "k": k if mode == "user" else None,
        "rows": len(rows),
        "skipped": dict(skips),
    }
    summary = report.as_dict()
    config = negatives_config(settings, mode, k)
    if not rows:
        atomic_write_json(root / "negatives" / "prompt.report.json", summary)
        raise RuntimeError(
            f"no usable negatives were generated; see {root / 'negatives' / 'prompt.report.json'}"
        )
    write_negatives(
        root,
        rows,
        embedder,
        dataset=view.dataset,
        dataset_fingerprint=view.dataset_fingerprint,
        config=config,
        details={
            "report": summary,
            "backend": {"name": backend.name, "model": backend.model},
            "split_fingerprint": view.split_fingerprint,
        },
    )
    summary["config_fingerprint"] = config_fingerprint(config)
    atomic_write_json(root / "negatives" / "prompt.report.json", summary)
    print(report.summary() + f"; {len(rows)} store rows; skipped {dict(skips)}")
    return summary


def mode_and_k(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    """``--mode`` and ``--k``, or where unset the config's ``prompt_negatives_mode`` / ``prompt_negatives_k``:
    the stage command builds the store the pipeline would build from the same config."""
    mode = args.mode if args.mode is not None else setting(config, "prompt_negatives_mode")
    k = args.k if args.k is not None else int(setting(config, "prompt_negatives_k"))
    return {"mode": mode, "k": k}


def run(args: argparse.Namespace) -> int:
    from recbole_hnlm.stages.common import load_training_view

    view = load_training_view(args)
    settings = LLMSettings.resolve(view.config, args)
    root = artifact_root(view.config, args, view.dataset)
    backend = settings.backend()
    try:
        generate_negatives(
            view,
            backend,
            settings.make_embedder(),
            settings,
            root,
            **mode_and_k(args, view.config),
            progress=not args.no_progress,
        )
    finally:
        backend.close()
    return 0
