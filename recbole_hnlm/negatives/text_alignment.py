"""Item-anchored alignment for DNS(M,N): a map g from item text to CF space steers which candidate is hard.

g is a ridge regression from an item's text vector (its ``aligndns_dims`` principal directions plus a
bias) to that item's current CF embedding, fitted on the real items the training split contains against
the **stop-gradient** final item embeddings. It is a closed-form solve with no path from the ranking
loss, so it cannot learn the user's own direction as the adversarial adapter of the paper's mix mode
does; it is refitted every ``aligndns_refit`` epochs as the CF space moves.

For a training pair (u, i), g(text(i)) is where the text puts the positive in CF space. The M uniform
candidates (``aligndns_candidates``) are ranked by their inner product with the steered query

    q = e_u + β · ‖e_u‖ · g(text(i)) / ‖g(text(i))‖          (β = ``aligndns_beta``)

and the top N (``dnsmn_n``) are the negatives. β > 0 prefers candidates that are hard for the user *and*
near where the text puts the positive; β < 0 steers away from them (items like the positive are likelier
false negatives). β = 0 is DNS(M,N) exactly. Two controls: ``aligndns_permute`` queries with the text of
a random other item (a fixed seeded permutation of items), so g's output no longer belongs to i; and
``aligndns_source: cf`` steers with the positive's own current CF embedding e_i instead of g(text(i)), so
no text is read at all: the text earns credit only where it beats that. ``aligndns_source: both`` steers
with ê_i + ĝ(text(i)) (unit vectors summed): the text as a correction to where CF puts the positive, which
earns credit only where it beats ``cf`` alone.

``aligndns_center`` steers with where the positive sits *relative to the catalogue*: g(text(i)) minus g's
mean over the fitted items (e_i minus the mean item embedding for ``cf``). Why: g explains a small share
of the item embeddings (R² 0.07-0.2), so its output is mostly its bias, the mean item; on LightGCN, whose
item embeddings share a common (popularity) direction, ĝ then points along that mean for every positive
alike (cosine 0.62 on toys, against 0.15 for e_i), and the steering demotes every popular candidate
whatever the positive is: a global softening, not text about i. Centering keeps only the item's part.

:meth:`TextAlignedDNSNegatives.report` gives the fit's R² on the items at each refit and the share of
picks the text changed against plain DNS(M,N) on the same candidates: where that share is near zero, the
text decides nothing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from recbole_hnlm.config_values import config_value
from recbole_hnlm.negatives.base import NegativeContext, Negatives
from recbole_hnlm.negatives.hard import DNSMNNegatives, EpochShare, pick, rows
from recbole_hnlm.negatives.item_vectors import configured_item_vectors, text_permutation
from recbole_hnlm.negatives.text_guard import principal_projection

STEERING_SOURCES = ("text", "cf", "both")


class RidgeTextMap:
    """g: text features ``[n, t]`` → CF space ``[n, d]``, ridge regression with a bias column.

    The penalty is ``ridge`` times the mean diagonal of XᵀX, so one setting means the same on any text
    embedder's scale. The Gram matrix is factored once; each refit is one ``[t+1, n] @ [n, d]`` product and
    two triangular solves.
    """

    def __init__(self, features: torch.Tensor, fit_rows: torch.Tensor, ridge: float) -> None:
        if ridge <= 0:
            raise ValueError(f"config key 'aligndns_ridge' must be > 0, got {ridge}")
        if len(fit_rows) < 2:
            raise ValueError(f"g needs at least 2 items to fit on, got {len(fit_rows)}")
        self.design = torch.cat([features, torch.ones(features.shape[0], 1)], dim=1).double()
        self.fit_rows = fit_rows
        fitted = self.design[fit_rows]
        gram = fitted.T @ fitted
        scale = float(gram.diagonal()[:-1].mean())
        penalty = ridge * (scale if scale > 0 else 1.0)  # all-zero text still gets a solvable system
        gram[:-1, :-1] += penalty * torch.eye(gram.shape[0] - 1, dtype=gram.dtype)  # the bias is not shrunk
        self.cholesky = torch.linalg.cholesky(gram)
        self.weights: torch.Tensor | None = None
        self.mean_output: torch.Tensor | None = None  # [d] g's mean over the fitted items (float32)
        self.outputs: torch.Tensor | None = None  # [n, d] g of every item (float32)

    def fit(self, targets: torch.Tensor) -> float:
        """Fit on ``targets`` [n, d] (rows ``fit_rows`` used, no gradient); returns R² on those rows."""
        target = targets.detach().to("cpu", torch.float64)[self.fit_rows]
        fitted = self.design[self.fit_rows]
        self.weights = torch.cholesky_solve(fitted.T @ target, self.cholesky)
        self.mean_output = (fitted.mean(dim=0) @ self.weights).float()  # g is affine: g(mean x) = mean g(x)
        # g of every item once per fit: a batch then gathers B rows instead of multiplying [B, t+1] in float64
        self.outputs = (self.design @ self.weights).float()
        residual = target - fitted @ self.weights
        total = ((target - target.mean(dim=0)) ** 2).sum()
        return float(1.0 - (residual**2).sum() / total) if total > 0 else 0.0

    def __call__(self, rows_: torch.Tensor) -> torch.Tensor:
        """g of the features at ``rows_`` (any shape of item ids) → ``[*rows_.shape, d]`` float32."""
        if self.outputs is None:
            raise RuntimeError("the text map g is used before its first fit")
        return self.outputs[rows_.cpu()]


class TextAlignedDNSNegatives(DNSMNNegatives):
    """DNS(M,N) ranked by the user's embedding steered by g(text(positive)); g refitted on the items."""

    name = "aligndns"
    needs_candidates = True
    needs_item_vectors = True

    def __init__(self, config: Any, dim: int) -> None:
        super().__init__(config, dim)
        self.beta = float(config_value(config, "aligndns_beta"))
        self.ridge = float(config_value(config, "aligndns_ridge"))
        self.refit_every = int(config_value(config, "aligndns_refit"))
        if self.refit_every < 1:
            raise ValueError(f"config key 'aligndns_refit' must be >= 1, got {self.refit_every}")
        dims = config_value(config, "aligndns_dims")
        self.dims = int(dims) if dims else None
        self.permute = bool(config_value(config, "aligndns_permute"))
        self.seed = int(config_value(config, "seed"))
        self.center = bool(config_value(config, "aligndns_center"))
        self.source = config_value(config, "aligndns_source")
        if self.source not in STEERING_SOURCES:
            raise ValueError(
                f"config key 'aligndns_source' must be one of {STEERING_SOURCES}, got {self.source!r}"
            )
        self.config = config
        self.text_map: RidgeTextMap | None = None
        self.fit_rows: torch.Tensor | None = None  # the training split's items, g's fitting rows
        self.query_row: torch.Tensor | None = None  # item id -> the item whose text is its query
        self.fitted_epoch: int | None = None
        self.text_direction: torch.Tensor | None = None  # [n, d] item id -> unit ĝ(text) of its query item
        self.fit_r2: dict[int, float] = {}
        self.changed_picks = EpochShare()  # picks the text changed against DNS(M,N)'s

    def bind(self, dataset: Any) -> None:
        """Load the item vectors and set g up on the items of the training split ``dataset``."""
        vectors = configured_item_vectors(self.config, dataset)
        features = principal_projection(vectors, self.dims) if self.dims else vectors
        trained = torch.unique(torch.as_tensor(dataset.inter_feat[dataset.iid_field]))
        self.fit_rows = trained[trained > 0]
        self.text_map = RidgeTextMap(features, self.fit_rows, self.ridge)
        rows = vectors.shape[0]
        self.query_row = text_permutation(rows, self.seed) if self.permute else torch.arange(rows)

    def refit(self, epoch: int, items: torch.Tensor) -> None:
        """Fit g at the first batch of every ``aligndns_refit``-th epoch (and before first use)."""
        if self.text_map is None or self.query_row is None:
            raise RuntimeError("aligndns needs bind(dataset) before training (the plugin's models call it)")
        due = self.fitted_epoch is None or (epoch != self.fitted_epoch and epoch % self.refit_every == 0)
        if due:
            self.fit_r2[epoch] = round(self.text_map.fit(items), 4)
            self.fitted_epoch = epoch
            text = self.text_map(self.query_row)
            if self.center:
                text = text - self.text_map.mean_output
            self.text_direction = F.normalize(text, dim=1).to(items.device)

    def steered_query(self, ctx: NegativeContext) -> torch.Tensor:
        """``[B, d]`` e_u + β‖e_u‖ ĝ(text(i)) (ê_i with ``aligndns_source: cf``, ê_i + ĝ(text(i)) with
        ``both``) for the batch's pairs (no gradient); with ``aligndns_center`` each relative to its
        catalogue mean."""
        user = ctx.user_e.detach()
        if self.beta == 0.0:
            return user
        placed = torch.zeros_like(user)
        if self.source in ("cf", "both"):
            pos = ctx.pos_e.detach()
            if self.center:
                items = ctx.propagation.item.detach()
                pos = pos - torch.index_select(items, 0, self.fit_rows.to(items.device)).mean(dim=0)
            placed += F.normalize(pos, dim=1)
        if self.source in ("text", "both"):
            if self.text_direction is None:
                raise RuntimeError("aligndns steers by g(text) before g's first fit (refit runs in training)")
            placed += torch.index_select(self.text_direction, 0, ctx.pos_items)
        return user + self.beta * user.norm(dim=1, keepdim=True) * F.normalize(placed, dim=1)

    def forward(self, ctx: NegativeContext) -> Negatives:
        cands = ctx.candidates()
        item = ctx.propagation.item
        if self.training:
            self.refit(ctx.epoch, item)
        if self.training:  # both rankings from one gather of the candidates: the plain one for the report
            top, plain = self.top_columns_of(ctx, cands, [self.steered_query(ctx), ctx.user_e])
            same = (top.unsqueeze(2) == plain.unsqueeze(1)).any(dim=2)
            self.changed_picks.add(ctx.epoch, int((~same).sum()), top.numel())
        else:
            top = self.top_columns(ctx, cands, self.steered_query(ctx))
        ids = pick(cands, top)
        return Negatives(emb=rows(item, ids), ids=ids)

    def report(self) -> dict[str, Any]:
        """g's R² at each refit and the share of picks the text changed against DNS(M,N)."""
        return {
            "text_changed_pick_share": self.changed_picks.overall(),
            "text_changed_pick_share_by_epoch": self.changed_picks.by_epoch(),
            "text_map_r2_by_epoch": dict(sorted(self.fit_r2.items())),
        }
