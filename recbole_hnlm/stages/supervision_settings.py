"""The settings of the supervision stage (what shapes the embedder's fine-tuning set), shared by the query
text builder, the CF miner and the stage itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from recbole_hnlm.config_values import config_value, settings_values
from recbole_hnlm.data.splits import split_seed

SELECTIONS = ("dns", "dns-ui", "ahns")


@dataclass(frozen=True)
class SupervisionSettings:
    """Config keys (the field names) that shape the fine-tuning set."""

    hnlm_cf_model: str = "LightGCN"
    hnlm_cf_epochs: int = 20
    hnlm_cf_checkpoint: str | None = None
    hnlm_sup_size: int | None = None
    hnlm_sup_per_user: int = 1
    hnlm_sup_candidates: int = 32
    hnlm_sup_selection: str = "dns-ui"
    hnlm_ahns_alpha: float = 0.0
    hnlm_ahns_beta: float = 1.0
    hnlm_ahns_p: float = 0.0
    hnlm_use_profiles: bool = False
    hnlm_query_cf_dims: int = 0
    hnlm_query_user_words: int = 24
    hnlm_item_profile_words: int = 16
    seed: int = 2020

    @classmethod
    def resolve(cls, config: Any, overrides: Mapping[str, Any] | None = None) -> SupervisionSettings:
        values = settings_values(cls, lambda name: (overrides or {}).get(name, config_value(config, name)))
        if values.get("hnlm_sup_size") is not None:
            values["hnlm_sup_size"] = int(values["hnlm_sup_size"])  # ~ (None) = per-user coverage
        if "seed" not in (overrides or {}):
            # the artefact belongs to the split, not to one training run: one store serves every seed
            values["seed"] = split_seed(config)
        settings = cls(**values)
        if settings.hnlm_sup_selection not in SELECTIONS:
            raise ValueError(
                f"config key 'hnlm_sup_selection' must be one of {SELECTIONS}, "
                f"got {settings.hnlm_sup_selection!r}"
            )
        return settings

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
