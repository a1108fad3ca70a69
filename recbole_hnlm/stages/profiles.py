"""Stage 1: an LLM profile (``summarization``, ``reasoning``) for every item and every user.

Item profiles come from the item's text fields and its training reviews; user profiles from the
user's *training* interactions (titles, the items' profiles, the user's reviews). Output folder
``<artifact_dir>/<dataset>/profiles/`` (replaced atomically)::

    items.jsonl, users.jsonl   {"token", "summarization", "reasoning", "status", "attempts"} per line
    meta.json                  dataset + fingerprint, settings + fingerprint, reports
    item_embeddings.npy + item_tokens.txt, user_embeddings.npy + user_tokens.txt   (with --embed)

Requests are cached in ``<artifact_dir>/<dataset>/llm_cache/profiles.jsonl``; a rerun after any
interruption sends only what is missing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recbole_hnlm.io import atomic_directory, atomic_write_json, config_fingerprint
from recbole_hnlm.llm.backends import ChatBackend
from recbole_hnlm.llm.cache import RequestCache
from recbole_hnlm.llm.embedders import Embedder
from recbole_hnlm.llm.parsing import Outcome, StructuredTask, profile_task
from recbole_hnlm.llm.prompts import HistoryEntry, ItemRecord, item_profile_messages, user_profile_messages
from recbole_hnlm.stages.cli import configure_profiles as configure_parser  # noqa: F401  (recbole-hnlm profiles)
from recbole_hnlm.stages.common import LLMSettings, TrainingView, artifact_root, shaping_settings
from recbole_hnlm.stages.runner import LLMRequest, StageReport, run_stage

USABLE = ("ok", "repaired", "fallback")
PROFILES_FORMAT = "recbole-hnlm/profiles"


def legacy_profiles_meta(meta: dict[str, Any]) -> bool:
    """A profiles ``meta.json`` written before the ``format`` field existed."""
    return meta.get("stage") == "profiles" and "dataset_fingerprint" in meta


class ProfilesMissingError(FileNotFoundError):
    pass


class ProfilesMismatchError(ValueError):
    """The profiles were written for another dataset or another training split."""


def checked_profiles_meta(folder: Path, view: TrainingView) -> dict[str, Any]:
    """``folder/meta.json``, checked to belong to this dataset *and* this training split: user profiles
    written from another split's histories would carry its test interactions into training."""
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        raise ProfilesMissingError(f"{meta_file} not found: run `recbole-hnlm profiles` for this dataset")
    meta = json.loads(meta_file.read_text())
    for key, ours in (
        ("dataset_fingerprint", view.dataset_fingerprint),
        ("split_fingerprint", view.split_fingerprint),
    ):
        if meta.get(key) != ours:
            raise ProfilesMismatchError(
                f"{meta_file}: {key} is {meta.get(key)}, but dataset {view.dataset!r} with this split has "
                f"{ours}; rerun `recbole-hnlm profiles` (its LLM answers are cached)"
            )
    return meta


def usable_summaries(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(user, item) token -> summarization of the profiles an LLM answered (fallbacks included)."""

    def usable(path: Path) -> dict[str, str]:
        return {
            t: r["summarization"]
            for t, r in read_profiles(path).items()
            if r.get("status") in USABLE and r.get("summarization")
        }

    return usable(folder / "users.jsonl"), usable(folder / "items.jsonl")


def profile_record(token: str, outcome: Outcome) -> dict[str, Any]:
    value = outcome.value or {}
    return {
        "token": token,
        "summarization": value.get("summarization"),
        "reasoning": value.get("reasoning"),
        "status": outcome.status,
        "attempts": outcome.attempts,
    }


def _task(settings: LLMSettings) -> StructuredTask:
    return profile_task(settings.profile_summary_chars, settings.profile_reasoning_chars)


def item_profiles(
    items: Mapping[str, ItemRecord],
    backend: ChatBackend,
    cache: RequestCache,
    settings: LLMSettings,
    *,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], StageReport]:
    task = _task(settings)
    requests = [
        LLMRequest(token, item_profile_messages(item, settings.budget, settings.item_noun), task)
        for token, item in items.items()
    ]
    outcomes, report = run_stage("item profiles", requests, backend, cache, settings, progress=progress)
    return [profile_record(r.id, outcomes[r.id]) for r in requests], report


def user_histories(
    histories: Mapping[str, list[str]],
    items: Mapping[str, ItemRecord],
    item_summaries: Mapping[str, str],
    reviews: Mapping[tuple[str, str], str],
) -> dict[str, list[HistoryEntry]]:
    """Each user's training items as prompt entries: title, the item's profile, the user's review."""
    out: dict[str, list[HistoryEntry]] = {}
    for user, tokens in histories.items():
        out[user] = [
            HistoryEntry(
                items[t].title if t in items else t,
                item_summaries.get(t),
                reviews.get((user, t)),
            )
            for t in tokens
        ]
    return out


def user_profiles(
    histories: Mapping[str, list[HistoryEntry]],
    backend: ChatBackend,
    cache: RequestCache,
    settings: LLMSettings,
    *,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], StageReport]:
    task = _task(settings)
    requests = [
        LLMRequest(user, user_profile_messages(history, settings.budget, settings.item_noun), task)
        for user, history in histories.items()
    ]
    outcomes, report = run_stage("user profiles", requests, backend, cache, settings, progress=progress)
    return [profile_record(r.id, outcomes[r.id]) for r in requests], report


def _jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def embed_profiles(records: list[dict[str, Any]], embedder: Embedder) -> tuple[list[str], np.ndarray]:
    """Tokens and embeddings of the usable profiles (failed ones are left out, never filled in)."""
    kept = [r for r in records if r["status"] in USABLE and r["summarization"]]
    vectors = embedder.embed([r["summarization"] for r in kept])
    return [r["token"] for r in kept], vectors


def write_profiles(
    out_dir: Path,
    items: list[dict[str, Any]],
    users: list[dict[str, Any]],
    *,
    meta: dict[str, Any],
    embedder: Embedder | None = None,
) -> None:
    """Write the profiles folder atomically (readers see the old folder or the complete new one)."""
    embedded: dict[str, tuple[list[str], np.ndarray]] = {}
    if embedder is not None:
        embedded = {"item": embed_profiles(items, embedder), "user": embed_profiles(users, embedder)}
        meta = {**meta, "embedder": {"name": embedder.name, "model": embedder.model}}
    meta = {**meta, "format": PROFILES_FORMAT}
    with atomic_directory(out_dir, PROFILES_FORMAT, legacy=legacy_profiles_meta) as tmp:
        (tmp / "items.jsonl").write_text(_jsonl(items), encoding="utf-8")
        (tmp / "users.jsonl").write_text(_jsonl(users), encoding="utf-8")
        for kind, (tokens, vectors) in embedded.items():
            np.save(tmp / f"{kind}_embeddings.npy", vectors.astype(np.float32))
            (tmp / f"{kind}_tokens.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")


def read_profiles(path: Path) -> dict[str, dict[str, Any]]:
    """``token -> record`` from a profiles JSON-lines file, naming the line of any bad record."""
    out: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
                out[str(record["token"])] = record
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}, line {number}: not a profile record ({err})") from err
    return out


def embed_profile_folder(folder: Path, embedder: Embedder) -> None:
    """Add the embeddings to a profiles folder written without them (rewritten atomically, text unchanged)."""
    meta = json.loads((folder / "meta.json").read_text())
    items = list(read_profiles(folder / "items.jsonl").values())
    users = list(read_profiles(folder / "users.jsonl").values())
    write_profiles(folder, items, users, meta=meta, embedder=embedder)


def _shaping(settings: LLMSettings) -> dict[str, Any]:
    """The settings that shape the profiles' text (the embedder only embeds it afterwards)."""
    return {k: v for k, v in shaping_settings(settings).items() if not k.startswith("embedder")}


def profile_settings_fingerprint(
    settings: LLMSettings, *, max_items: int | None = None, max_users: int | None = None
) -> str:
    return config_fingerprint({**_shaping(settings), "max_items": max_items, "max_users": max_users})


# Profiles per second of the embedded SmolLM2 served by llama.cpp (llm_backend: llamacpp) on the 2-core CPU,
# 4 requests in flight: benchmarks/results/llm_throughput.md (1.04 profiles/s, 200 ml-1m items).
CPU_PROFILES_PER_SECOND = 1.04


def profiles_estimate(n_items: int, n_users: int, settings: LLMSettings) -> str:
    """What the profile stage is about to do, a time estimate, and how to skip it (printed before it starts:
    one LLM generation per item and per user, minutes to hours on a CPU)."""
    total = n_items + n_users
    if settings.llm_backend == "llamacpp" and not settings.llm_model:
        minutes = total / CPU_PROFILES_PER_SECOND / 60
        time_text = (
            f"about {minutes:.0f} min with the embedded SmolLM2 on a 2-core CPU "
            f"(~{CPU_PROFILES_PER_SECOND:.1f} profiles/s measured), much less on a GPU or an LLM server"
        )
    else:
        time_text = (
            f"time depends on the {settings.llm_backend} model; the embedded SmolLM2 on a 2-core CPU makes "
            f"~{CPU_PROFILES_PER_SECOND:.1f} profiles/s"
        )
    return (
        f"[profiles] {total:,} LLM generations ({n_items:,} items + {n_users:,} users); {time_text}. Answers "
        "already in llm_cache are not sent again, so an interrupted run resumes. To skip it: "
        "hnlm_use_profiles: False (queries from item text and history titles, the CPU default), or "
        "profile_embeddings: PATH (an existing profiles folder) for the rlmrec samplers; to try a part: "
        "recbole-hnlm profiles --max_items N --max_users N"
    )


def generate_profiles(
    view: TrainingView,
    backend: ChatBackend,
    settings: LLMSettings,
    root: Path,
    *,
    embedder: Embedder | None = None,
    max_items: int | None = None,
    max_users: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run stage 1 end to end for a dataset view; returns the meta written to ``profiles/meta.json``."""
    items = dict(list(view.items.items())[:max_items]) if max_items else dict(view.items)
    histories = dict(list(view.histories.items())[:max_users]) if max_users else dict(view.histories)
    print(profiles_estimate(len(items), len(histories), settings), flush=True)
    with RequestCache(root / "llm_cache" / "profiles.jsonl") as cache:
        item_records, item_report = item_profiles(items, backend, cache, settings, progress=progress)
        summaries = {r["token"]: r["summarization"] for r in item_records if r["status"] in USABLE}
        entries = user_histories(histories, view.items, summaries, view.reviews)
        user_records, user_report = user_profiles(entries, backend, cache, settings, progress=progress)
    reports = [item_report.as_dict(), user_report.as_dict()]
    meta = {
        "stage": "profiles",
        "dataset": view.dataset,
        "dataset_fingerprint": view.dataset_fingerprint,
        "split_fingerprint": view.split_fingerprint,
        "config_fingerprint": profile_settings_fingerprint(
            settings, max_items=max_items, max_users=max_users
        ),
        "settings": _shaping(settings),
        "backend": {"name": backend.name, "model": backend.model},
        "reports": reports,
    }
    write_profiles(root / "profiles", item_records, user_records, meta=meta, embedder=embedder)
    atomic_write_json(root / "profiles.report.json", reports)
    for report in (item_report, user_report):
        print(report.summary())
    return meta


def run(args: argparse.Namespace) -> int:
    from recbole_hnlm.stages.common import load_training_view

    view = load_training_view(args)
    settings = LLMSettings.resolve(view.config, args)
    root = artifact_root(view.config, args, view.dataset)
    backend = settings.backend()
    try:
        embedder = settings.make_embedder() if args.embed else None
        generate_profiles(
            view,
            backend,
            settings,
            root,
            embedder=embedder,
            max_items=args.max_items,
            max_users=args.max_users,
            progress=not args.no_progress,
        )
    finally:
        backend.close()
    return 0
