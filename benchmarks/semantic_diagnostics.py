"""Why a text signal helps or hurts hard-negative sampling: the premises of semdns, guarddns and HNLMRec's h,
measured on held-out positives (the false negatives a sampler should avoid).

    python benchmarks/semantic_diagnostics.py --dataset ml-100k --checkpoint RUN.pth \
        --item_vectors artifacts/ml-100k/item_vectors/all-MiniLM-L6-v2 [--adapter artifacts/ml-100k/embedder]

``--checkpoint`` is a converged model of the fixed split (e.g. a bench cell's rns checkpoint): its split
gives the held-out (valid + test) positives and its scores give DNS's picks. For ``--samples`` training
pairs (u, i), seeded:

* ``text_neighbours``: of the ``--neighbours`` items nearest to i's text (u's training items left out),
  the share that are held-out positives of u, against the same share for uniform non-interacted items
  (semdns proposes these neighbours; a high share means it proposes false negatives).
* ``guard``: 32 uniform candidates, split by closeness to u's text taste into the 16 closest (guarddns
  drops them) and the 16 farthest; the held-out share of each half, and of DNS's top-2 picks from the 32
  (DNS(32,2)), from the 16 kept (guarddns) and from the first 16 drawn (DNS(16,2)); and the share of each
  user's catalogue this per-row guard keeps with probability under 5% (binomial, from the percentile).
  Closeness as the sampler measures it: on the item vectors' ``guarddns_dims`` principal directions.
* ``veto``: 20 uniform candidates, the first 16 outside the user's closest 1 − q of the catalogue
  (``guarddns_quantile`` q), the held-out share of DNS(16,2)'s picks from them, with the real text and with
  each item's text read from a random other item (the ``guarddns_permute`` control).
* ``embedder`` (with ``--adapter``): for triples mined by the checkpoint's model (j = the top of 32 by
  ``e_u·e_m + e_i·e_m``), the gap ``cos(q, j) − cos(q, i)`` and the rank of j among all items under the
  fine-tuned adapter and under its un-tuned base, and the rank of j among i's own text neighbours
  (what semdns would propose from text(i)).

* ``adapter`` (with ``--adapter_epochs E``): the paper's mix mode (HNLMLightGCN, adversarial adapter,
  the default α and λ) trained E epochs with two stores made here in seconds, h = text(i) (the item
  vectors) and h = one random code per user; per epoch, on two training batches, the mean
  ``cos(adapter(h), e_u)`` and ``cos(adapter(h), e_i)`` and the share of adapted negatives whose nearest
  item (cosine, propagated embeddings) is a training positive of u. If the adapter collapses onto the
  user's direction, the two stores look alike.

Results are merged per dataset into ``benchmarks/results/semantic_diagnostics.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, machine, write_results
from benchmarks.semantic_diagnostics_report import markdown
from recbole_hnlm.bench.groups import heldout_keys, is_heldout
from recbole_hnlm.config_values import config_value
from recbole_hnlm.negatives.candidates import CandidateSampler
from recbole_hnlm.negatives.hard import candidate_scores
from recbole_hnlm.negatives.item_vectors import load_item_vectors, text_permutation
from recbole_hnlm.negatives.semantic_pool import nearest_items
from recbole_hnlm.negatives.text_guard import TextGuard
from recbole_hnlm.quick_start import load_data_and_model
from recbole_hnlm.stages.supervision import cf_embeddings

NAME = "semantic_diagnostics"
# closeness on the item vectors' principal directions, as the sampler measures it (the yaml default): the raw
# MiniLM vectors share one large common direction that would rank every user's catalogue alike
GUARD_DIMS = config_value({}, "guarddns_dims")


def share(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else float("nan")


def text_neighbours(ctx: dict[str, Any], neighbours: int) -> dict[str, Any]:
    users, items, n_items, keys = ctx["users"], ctx["items"], ctx["n_items"], ctx["keys"]
    vectors, sampler = ctx["vectors"], ctx["sampler"]
    positives = torch.from_numpy(items)
    table = nearest_items(vectors[positives], vectors, neighbours, exclude=positives)
    grid = np.repeat(users[:, None], neighbours, axis=1)
    fresh = ~sampler.is_positive(grid, table)  # training positives are redrawn by semdns: leave them out
    text_hits = is_heldout(grid, table, keys, n_items)[fresh]
    np.random.seed(0)
    uniform = sampler.sample(users).numpy()
    uniform_hits = is_heldout(np.repeat(users[:, None], uniform.shape[1], axis=1), uniform, keys, n_items)
    return {
        "neighbours": neighbours,
        "training_positive_share": float(1 - fresh.mean()),
        "heldout_share_text": share(text_hits),
        "heldout_share_uniform": share(uniform_hits),
        "ratio": share(text_hits) / share(uniform_hits),
    }


def dns_picks(ctx: dict[str, Any], pool: torch.Tensor, top_n: int = 2) -> np.ndarray:
    """DNS's top-``top_n`` of each row of ``pool`` under the checkpoint's scores."""
    scores = candidate_scores(ctx["user_e"][torch.from_numpy(ctx["users"])], ctx["item_e"], pool)
    return pool.gather(1, scores.topk(top_n, dim=1).indices).numpy()


def heldout_share(ctx: dict[str, Any], pool: np.ndarray) -> float:
    users = np.repeat(ctx["users"][:, None], pool.shape[1], axis=1)
    return share(is_heldout(users, pool, ctx["keys"], ctx["n_items"]))


def excluded_share(drawn: int, drop: int, below: float = 0.05) -> float:
    """The share of each user's catalogue that the per-row guard (drop the ``drop`` closest of ``drawn``)
    keeps with probability under ``below``: an item at closeness percentile p is kept when fewer than
    drawn − drop of the other drawn − 1 candidates are less close, P = binom.cdf(drawn − drop − 1,
    drawn − 1, p)."""
    grid = np.linspace(0.0, 1.0, 10001)
    kept = binom.cdf(drawn - drop - 1, drawn - 1, grid)
    return float(1.0 - grid[np.argmax(kept < below)])


def guard(ctx: dict[str, Any], drawn: int = 32) -> dict[str, Any]:
    users, n_items = ctx["users"], ctx["n_items"]
    text_guard = TextGuard(
        ctx["vectors"], ctx["train_users"], ctx["train_items"], ctx["n_users"], drawn // 2, dims=GUARD_DIMS
    )
    np.random.seed(1)
    sampler_32 = CandidateSampler(ctx["train_users"], ctx["train_items"], n_items, drawn)
    cands = sampler_32.sample(users)
    order = text_guard.closeness(users, cands).argsort(dim=1, descending=True)
    closest, farthest = cands.gather(1, order[:, : drawn // 2]), cands.gather(1, order[:, drawn // 2 :])
    return {
        "drawn": drawn,
        "heldout_share_closest_half": heldout_share(ctx, closest.numpy()),
        "heldout_share_farthest_half": heldout_share(ctx, farthest.numpy()),
        "top_n": 2,
        # DNS's top-N picks from all drawn, from the half the guard keeps, from the first half drawn
        "picks_heldout_share": {
            "dns_all": heldout_share(ctx, dns_picks(ctx, cands)),
            "guarded": heldout_share(ctx, dns_picks(ctx, text_guard.filter(users, cands))),
            "dns_half": heldout_share(ctx, dns_picks(ctx, cands[:, : drawn // 2])),
        },
        "excluded_catalogue_share": excluded_share(drawn, drawn // 2),
    }


def veto(ctx: dict[str, Any], drawn: int = 20, kept: int = 16, quantiles=(0.8, 0.9, 0.95, 0.98)) -> dict:
    """The catalogue veto (guarddns_quantile q): of ``drawn`` uniform candidates the first ``kept`` outside
    the user's closest 1 − q by text; the held-out share of DNS(kept, 2)'s picks, with the real text and
    with every item's text read from a random other item (the permutation control)."""
    users = ctx["users"]
    np.random.seed(2)
    cands = CandidateSampler(ctx["train_users"], ctx["train_items"], ctx["n_items"], drawn).sample(users)
    texts = {"text": ctx["vectors"], "permuted": ctx["vectors"][text_permutation(len(ctx["vectors"]), 2020)]}
    rows = []
    for q in quantiles:
        for label, vectors in texts.items():
            drop = drawn - kept
            text_guard = TextGuard(
                vectors,
                ctx["train_users"],
                ctx["train_items"],
                ctx["n_users"],
                drop,
                dims=GUARD_DIMS,
                quantile=q,
            )
            picked = dns_picks(ctx, text_guard.filter(users, cands))
            vetoed = text_guard.report()["text_guard_vetoed_share"]
            rows.append(
                {
                    "quantile": q,
                    "text": label,
                    "picks_heldout_share": heldout_share(ctx, picked),
                    "vetoed_share": vetoed,
                }
            )
    return {
        "drawn": drawn,
        "kept": kept,
        "dns_first_kept": heldout_share(ctx, dns_picks(ctx, cands[:, :kept])),
        "rows": rows,
    }


def embedder(ctx: dict[str, Any], adapter: Path, view: Any, samples: int) -> dict[str, Any]:
    from recbole_hnlm.llm.embedding_model import EmbeddingModel, read_spec
    from recbole_hnlm.stages.supervision import QueryBuilder, SupervisionSettings

    users, items, dataset = ctx["users"][:samples], ctx["items"][:samples], ctx["dataset"]
    user_e, item_e = ctx["user_e"], ctx["item_e"]
    np.random.seed(2)
    cands = CandidateSampler(ctx["train_users"], ctx["train_items"], ctx["n_items"], 32).sample(users)
    query_e = user_e[torch.from_numpy(users)] + item_e[torch.from_numpy(items)]
    j = cands.gather(1, candidate_scores(query_e, item_e, cands).argmax(1, keepdim=True))[:, 0].numpy()
    builder = QueryBuilder.build(view, None, SupervisionSettings(hnlm_use_profiles=False))
    tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    u_tok = dataset.id2token(dataset.uid_field, users).astype(str)
    queries = [builder.query(u, tokens[i]) for u, i in zip(u_tok, items)]
    passages = [builder.passage(t) for t in tokens[1:]]
    out: dict[str, Any] = {"triples": len(queries)}
    tuned, base = EmbeddingModel.load(adapter), EmbeddingModel.create(read_spec(adapter))
    models = {"fine-tuned": tuned, "un-tuned": base}
    for name, model in models.items():
        q = torch.from_numpy(model.embed(queries, role="query"))
        p = torch.from_numpy(model.embed(passages, role="passage"))  # row r = item id r + 1
        sims = q @ p.T
        idx = torch.arange(len(queries))
        gap = sims[idx, torch.from_numpy(j) - 1] - sims[idx, torch.from_numpy(items) - 1]
        rank = (sims > sims[idx, torch.from_numpy(j) - 1][:, None]).sum(1) + 1
        out[name] = {
            "gap_mean": float(gap.mean()),
            "gap_positive_share": float((gap > 0).float().mean()),
            "rank_of_j_median": float(rank.float().median()),
            "rank_of_j_top64_share": float((rank <= 64).float().mean()),
        }
    vectors = ctx["vectors"]
    sims = vectors[torch.from_numpy(items)] @ vectors.T
    sims[:, 0] = -torch.inf
    sims[torch.arange(len(items)), torch.from_numpy(items)] = -torch.inf
    rank = (sims > sims[torch.arange(len(items)), torch.from_numpy(j)][:, None]).sum(1) + 1
    out["text(i)"] = {
        "rank_of_j_median": float(rank.float().median()),
        "rank_of_j_top64_share": float((rank <= 64).float().mean()),
    }
    out["items"] = len(passages)
    return out


def write_pair_store(path: Path, ctx: dict[str, Any], vectors: np.ndarray) -> Path:
    from recbole_hnlm.data.fingerprint import dataset_fingerprint
    from recbole_hnlm.negatives.store import write_store

    dataset = ctx["dataset"]
    users = dataset.id2token(dataset.uid_field, ctx["train_users"]).astype(str)
    items = dataset.id2token(dataset.iid_field, ctx["train_items"]).astype(str)
    fp = dataset_fingerprint(dataset)
    write_store(
        path, users, items, vectors, producer="diagnostics", dataset=ctx["name"], dataset_fingerprint=fp
    )
    return path


def adapter_geometry(ctx: dict[str, Any], folder: Path, epochs: int) -> dict[str, Any]:
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from recbole_hnlm.bench.groups import nearest_items as nearest_by_cosine
    from recbole_hnlm.config import make_config
    from recbole_hnlm.negatives import SEMANTIC_FIELD

    rng = np.random.default_rng(0)
    text = ctx["vectors"][torch.from_numpy(ctx["train_items"])].numpy()
    codes = rng.normal(size=(int(ctx["train_users"].max()) + 1, text.shape[1])).astype(np.float32)
    stores = {
        "text(i)": write_pair_store(folder / "store-text", ctx, text),
        "random code per user": write_pair_store(folder / "store-codes", ctx, codes[ctx["train_users"]]),
    }
    out: dict[str, Any] = {"epochs": epochs}
    for name, store in stores.items():
        config = make_config(
            "HNLMLightGCN",
            ctx["name"],
            config_dict={
                **ctx["config_dict"],
                "semantic_negatives": str(store),
                "adapter_training": "adversarial",
                "epochs": epochs,
                "show_progress": False,
                "state": "ERROR",
            },
        )
        init_seed(config["split_seed"], config["reproducibility"])
        train, _, _ = data_preparation(config, create_dataset(config))
        init_seed(config["seed"], config["reproducibility"])
        model = get_model("HNLMLightGCN")(config, train._dataset)
        trainer = get_trainer(config["MODEL_TYPE"], "HNLMLightGCN")(config, model)
        rows = []
        for epoch in range(epochs):
            model.current_epoch = epoch
            trainer._train_epoch(train, epoch)
            model.eval()
            with torch.no_grad():
                prop = model.propagate()
                cos_u, cos_i, hits = [], [], []
                for b, batch in enumerate(train):
                    if b >= 2:
                        break
                    u, i = batch[model.USER_ID], batch[model.ITEM_ID]
                    adapted = model.semantic_adapter(batch[SEMANTIC_FIELD].float())
                    cos_u.append(torch.cosine_similarity(adapted, prop.user[u], dim=-1))
                    cos_i.append(torch.cosine_similarity(adapted, prop.item[i], dim=-1))
                    near = nearest_by_cosine(adapted, prop.item).numpy()
                    hits.append(ctx["sampler"].is_positive(u.numpy(), near))
            model.train()
            rows.append(
                {
                    "epoch": epoch,
                    "cos_user": float(torch.cat(cos_u).mean()),
                    "cos_positive": float(torch.cat(cos_i).mean()),
                    "nearest_is_training_positive": float(np.concatenate(hits).mean()),
                }
            )
        out[name] = rows
    density = len(ctx["train_users"]) / (ctx["n_users"] - 1) / (ctx["n_items"] - 1)
    out["uniform_item_is_training_positive"] = density
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--item_vectors", required=True)
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--embedder_samples", type=int, default=500)
    parser.add_argument("--neighbours", type=int, default=64)
    parser.add_argument("--adapter_epochs", type=int, default=0, help="epochs of the adapter geometry run")
    parser.add_argument("--work", default="artifacts/diagnostics", help="where the diagnostic stores go")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(args.checkpoint)
    train = train_data._dataset
    n_items = int(train.item_num)
    train_users = train.inter_feat[train.uid_field].numpy().astype(np.int64)
    train_items = train.inter_feat[train.iid_field].numpy().astype(np.int64)
    rng = np.random.default_rng(2020)
    rows = rng.choice(len(train_users), size=min(args.samples, len(train_users)), replace=False)
    model.eval()
    with torch.no_grad():
        user_e, item_e = (torch.from_numpy(x) for x in cf_embeddings(model, dataset))
    ctx = {
        "name": args.dataset,
        "config_dict": {
            k: config[k] for k in ("split_seed", "seed", "embedding_size", "data_path", "learning_rate")
        },
        "dataset": dataset,
        "users": train_users[rows],
        "items": train_items[rows],
        "train_users": train_users,
        "train_items": train_items,
        "n_items": n_items,
        "n_users": int(train.user_num),
        "keys": heldout_keys(n_items, valid_data._dataset, test_data._dataset),
        "vectors": load_item_vectors(args.item_vectors, dataset),
        "sampler": CandidateSampler(train_users, train_items, n_items, 16),
        "user_e": user_e,
        "item_e": item_e,
    }
    result: dict[str, Any] = {
        "checkpoint_model": config["model"],
        "checkpoint_sampler": config["neg_sampler"],
        "split_seed": config["split_seed"],
        "samples": len(rows),
        "text_neighbours": text_neighbours(ctx, args.neighbours),
        "guard": guard(ctx),
        "veto": veto(ctx),
    }
    if args.adapter:
        from recbole_hnlm.stages.common import training_view

        result["embedder"] = embedder(ctx, Path(args.adapter), training_view(config), args.embedder_samples)
    if args.adapter_epochs:
        result["adapter"] = adapter_geometry(ctx, Path(args.work) / args.dataset, args.adapter_epochs)
    path = RESULTS / f"{NAME}.json"
    payload = json.loads(path.read_text()) if path.is_file() else {"datasets": {}}
    # measures not rerun (the embedder, the adapter) keep their earlier values
    previous = payload["datasets"].get(args.dataset, {})
    payload["datasets"][args.dataset] = {**previous, **result, "machine": machine()}
    write_results(NAME, payload, markdown(payload))


if __name__ == "__main__":
    main()
