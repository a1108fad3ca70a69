"""HNLMRec step 3a: collaborative supervision for the embedder's fine-tuning.

A CF backbone trained with uniform negatives (``hnlm_cf_model``, default RecBole's BPR, for
``hnlm_cf_epochs`` epochs, selected on *validation*; the test split is never touched here) scores, for
``hnlm_sup_size`` sampled training interactions (u, i), ``hnlm_sup_candidates`` = M uniformly drawn items u
never interacted with; the collaborative hard negative j is the top-scored one (DNS), or with
``hnlm_sup_selection: ahns`` the one whose score is closest to ``β·(s_ui + α)^(p+1)`` (AHNS-style
adaptive hardness). Each triple becomes a fine-tuning example::

    query    = text of i (+ its profile) and u's profile      (the same builder inference uses)
    positive = text of j (+ its profile)                      (pulled toward: the hard negative)
    negative = text of i (+ its profile)                      (pushed away from: the interacted item)

CF embeddings serialised into the query (the paper's README format) are off by default
(``hnlm_query_cf_dims: 0``): a 64-d vector printed as text costs ~6 tokens per number, far beyond the
query length a CPU can afford (the reference code truncated its queries at 64 tokens anyway), and a
text model's tokenizer sees digits, not geometry. ``hnlm_query_cf_dims: k`` adds the first k dimensions
(2 decimals) of u's and i's CF embeddings for those who want the paper's format.

Output ``<artifact_dir>/<dataset>/supervision/`` (written atomically): ``triples.jsonl``, ``meta.json``
(fingerprints of the dataset, the settings, the profiles and the CF checkpoint), ``cf_embeddings.npz``
when CF dimensions are serialised. The trained CF checkpoint is cached in ``supervision_cf/``.

The parts live by concern: the settings in :mod:`.supervision_settings`, the query/passage texts in
:mod:`.query_text`, the CF backbone and the mining in :mod:`.cf_mining`; this module assembles and writes
the set (and re-exports their names, as it held them before).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from recbole_hnlm.io import (
    atomic_directory,
    check_replaceable,
    fingerprint,
    under_artefact_lock,
)
from recbole_hnlm.stages.cf_mining import (  # noqa: F401  (re-exported: their old home)
    CF_DIR,
    candidate_scores,
    cf_config,
    cf_embeddings,
    mine,
    sample_pairs,
    select_negatives,
    train_cf,
)
from recbole_hnlm.stages.common import artifact_dir, stage_config, training_view  # noqa: F401
from recbole_hnlm.stages.query_text import QueryBuilder
from recbole_hnlm.stages.supervision_settings import SELECTIONS, SupervisionSettings  # noqa: F401

SUPERVISION_DIR = "supervision"
SUPERVISION_FORMAT = "recbole-hnlm/supervision"


def legacy_supervision_meta(meta: dict[str, Any]) -> bool:
    """A supervision ``meta.json`` written before the ``format`` field existed."""
    return meta.get("stage") == "supervision" and "fingerprint" in meta


def supervision_fingerprint(view: Any, settings: SupervisionSettings, profiles_fp: str | None) -> str:
    return fingerprint([view.dataset_fingerprint, settings.as_dict(), profiles_fp])


def read_meta(folder: Path) -> dict[str, Any] | None:
    meta_file = folder / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        return json.loads(meta_file.read_text())
    except ValueError:
        return None


@under_artefact_lock(lambda root, **_: Path(root) / SUPERVISION_DIR)
def build_supervision(
    config: Any,
    root: Path,
    *,
    view: Any = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Write (or reuse, when its fingerprint matches) ``<root>/supervision``; returns the folder.

    Under the folder's lock: a concurrent run waits, then reuses it (and the CF cache's ``tmp`` folder,
    removed by whoever finishes training, is never pulled from under a run still training)."""
    settings = SupervisionSettings.resolve(config)
    view = view if view is not None else training_view(config)
    builder = QueryBuilder.build(view, root / "profiles", settings)
    out = root / SUPERVISION_DIR
    fp = supervision_fingerprint(view, settings, builder.profiles_fingerprint)
    meta = read_meta(out)
    if not force and meta is not None and meta.get("fingerprint") == fp and (out / "triples.jsonl").is_file():
        return out
    check_replaceable(out, SUPERVISION_FORMAT, legacy=legacy_supervision_meta)
    start = time.perf_counter()
    model, dataset, train, cf_info = train_cf(config, settings, root, progress=progress)
    from recbole_hnlm.data.fingerprint import dataset_fingerprint

    if dataset_fingerprint(dataset) != view.dataset_fingerprint:
        raise ValueError(
            f"the CF backbone {settings.hnlm_cf_model} loaded dataset {config['dataset']!r} with fingerprint "
            f"{dataset_fingerprint(dataset)}, the profiles/text view has {view.dataset_fingerprint}"
        )
    users, items, negatives, stats = mine(model, dataset, train, settings)
    uid, iid = dataset.uid_field, dataset.iid_field
    u_tok = dataset.id2token(uid, users).astype(str)
    i_tok = dataset.id2token(iid, items).astype(str)
    j_tok = dataset.id2token(iid, negatives).astype(str)
    cf_arrays = None
    if settings.hnlm_query_cf_dims > 0:
        user_e, item_e = cf_embeddings(model, dataset)
        cf_arrays = {
            "user": user_e[1:],
            "item": item_e[1:],
            "user_tokens": np.asarray(dataset.field2id_token[uid][1:]).astype(str),
            "item_tokens": np.asarray(dataset.field2id_token[iid][1:]).astype(str),
        }
        builder.cf_user = dict(zip(cf_arrays["user_tokens"].tolist(), cf_arrays["user"]))
        builder.cf_item = dict(zip(cf_arrays["item_tokens"].tolist(), cf_arrays["item"]))
        builder.cf_user = {k: v[: settings.hnlm_query_cf_dims] for k, v in builder.cf_user.items()}
        builder.cf_item = {k: v[: settings.hnlm_query_cf_dims] for k, v in builder.cf_item.items()}
    lines = []
    for u, i, j in zip(u_tok.tolist(), i_tok.tolist(), j_tok.tolist()):
        record = {
            "user": u,
            "item": i,
            "hard_negative": j,
            "query": builder.query(u, i),
            "positive": builder.passage(j),
            "negative": builder.passage(i),
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    meta = {
        "format": SUPERVISION_FORMAT,
        "stage": "supervision",
        "dataset": view.dataset,
        "dataset_fingerprint": view.dataset_fingerprint,
        "fingerprint": fp,
        "profiles_fingerprint": builder.profiles_fingerprint,
        "settings": settings.as_dict(),
        "cf": cf_info,
        "count": len(lines),
        "mining": stats,
        "text_fallbacks": dict(builder.fallbacks),
        "seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_directory(out, SUPERVISION_FORMAT, legacy=legacy_supervision_meta) as tmp:
        (tmp / "triples.jsonl").write_text("".join(lines), encoding="utf-8")
        if cf_arrays is not None:
            np.savez(tmp / "cf_embeddings.npz", **cf_arrays)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    print(
        f"[supervision] {len(lines)} triples "
        f"({settings.hnlm_sup_selection}, M={settings.hnlm_sup_candidates}) "
        f"-> {out}; text fallbacks {dict(builder.fallbacks)}"
    )
    return out


def read_triples(folder: Path) -> list[dict[str, str]]:
    path = folder / "triples.jsonl"
    out = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
                out.append({k: str(record[k]) for k in ("user", "item", "query", "positive", "negative")})
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}, line {number}: not a supervision triple ({err})") from err
    return out
