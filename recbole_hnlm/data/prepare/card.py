"""The dataset card ``NAME.card.json`` / ``NAME.card.md``: inputs, filters, sizes after each step, skips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recbole_hnlm.io import fingerprint

from .split_files import SPLIT_NAMES, SPLIT_RATIOS

CARD_VERSION = 1


def build_card(
    config: Any,
    *,
    inputs: list[dict[str, str]],
    steps: list[dict[str, Any]],
    sizes: tuple[int, int, int],
    duplicates: int,
    skips: dict[str, Any],
    metadata: dict[str, Any],
    split_counts: dict[str, int],
    columns: dict[str, list[str] | None],
    files: list[str],
) -> dict[str, Any]:
    """The card of a prepared dataset; ``sizes`` is ``(users, items, interactions)``."""
    n_users, n_items, n = sizes
    return {
        "card_version": CARD_VERSION,
        "dataset": config.name,
        "source": config.source,
        "filters": config.filters(),
        "inputs": inputs,
        "fingerprint": fingerprint({"inputs": inputs, "filters": config.filters(), "v": CARD_VERSION}),
        "users": n_users,
        "items": n_items,
        "interactions": n,
        "density": (n / (n_users * n_items)) if n_users and n_items else 0.0,
        "steps": steps,
        "duplicates_dropped": duplicates,
        "skips": {name: dict(sorted(c.items())) for name, c in skips.items()},
        "metadata": metadata,
        "split": {"seed": config.seed, "ratios": list(SPLIT_RATIOS), **split_counts}
        if config.split_files
        else None,
        "columns": columns,
        "files": sorted(files),
    }


def previous_files(card_path: Path) -> list[str]:
    """The files an earlier ``prepare`` listed in its card (none when there is no readable card)."""
    try:
        files = json.loads(card_path.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(files, list):
        return []
    plain = [name for name in files if isinstance(name, str) and name not in ("", ".", "..")]
    return [name for name in plain if Path(name).name == name]  # names inside the folder only


def card_markdown(card: dict[str, Any]) -> str:
    """The dataset card as Markdown (what ``prepare`` prints)."""
    lines = [
        f"# Dataset card: {card['dataset']}",
        "",
        f"source: {card['source']}; fingerprint: `{card['fingerprint']}`",
        "",
        "| users | items | interactions | density |",
        "|---|---|---|---|",
        f"| {card['users']:,} | {card['items']:,} | {card['interactions']:,} | {card['density']:.3e} |",
        "",
        "## Filter steps",
        "",
        "| step | interactions | users | items |",
        "|---|---|---|---|",
    ]
    for step in card["steps"]:
        name = step["step"] + (f" (passes: {step['passes']})" if "passes" in step else "")
        users = f"{step['users']:,}" if "users" in step else ""
        items = f"{step['items']:,}" if "items" in step else ""
        lines.append(f"| {name} | {step['interactions']:,} | {users} | {items} |")
    lines += ["", f"duplicate reviews dropped: {card['duplicates_dropped']:,}", "", "## Skipped lines", ""]
    for name, counts in card["skips"].items():
        text = ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"
        lines.append(f"- {name}: {text}")
    meta = card["metadata"]
    lines += [
        "",
        f"items without metadata: {meta['items_without_metadata']:,}; "
        f"duplicate metadata lines: {meta['duplicate_metadata_lines']:,}",
    ]
    if card["split"]:
        s = card["split"]
        parts = ", ".join(f"{p} {s[p]:,}" for p in SPLIT_NAMES)
        lines.append(f"split files (seed {s['seed']}): {parts}")
    lines += ["", "files: " + ", ".join(card["files"]), ""]
    return "\n".join(lines)
