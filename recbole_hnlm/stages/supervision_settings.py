"""The settings of the supervision stage (what shapes the embedder's fine-tuning set), shared by the query
text builder, the CF miner and the stage itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from recbole_hnlm.config_values import RECBOLE_SEED, config_value, default_of, settings_values
from recbole_hnlm.data.splits import split_seed

SELECTIONS = ("dns", "dns-ui", "ahns")


@dataclass(frozen=True)
class SupervisionSettings:
    """Config keys (the field names; defaults: ``properties/overall.yaml``) that shape the fine-tuning set.

    ``seed`` is RecBole's key, with RecBole's default; :meth:`resolve` sets it to the split's seed."""

    hnlm_cf_model: str = default_of("hnlm_cf_model")
    hnlm_cf_epochs: int = default_of("hnlm_cf_epochs")
    hnlm_cf_checkpoint: str | None = default_of("hnlm_cf_checkpoint")
    hnlm_sup_size: int | None = default_of("hnlm_sup_size")
    hnlm_sup_per_user: int = default_of("hnlm_sup_per_user")
    hnlm_sup_candidates: int = default_of("hnlm_sup_candidates")
    hnlm_sup_selection: str = default_of("hnlm_sup_selection")
    hnlm_ahns_alpha: float = default_of("hnlm_ahns_alpha")
    hnlm_ahns_beta: float = default_of("hnlm_ahns_beta")
    hnlm_ahns_p: float = default_of("hnlm_ahns_p")
    hnlm_use_profiles: bool = default_of("hnlm_use_profiles")
    hnlm_query_cf_dims: int = default_of("hnlm_query_cf_dims")
    hnlm_query_user_words: int = default_of("hnlm_query_user_words")
    hnlm_item_profile_words: int = default_of("hnlm_item_profile_words")
    seed: int = RECBOLE_SEED

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
        if settings.hnlm_sup_selection == "ahns":
            from recbole_hnlm.negatives.hard import ahns_power

            ahns_power(settings.hnlm_ahns_p, "hnlm_ahns_p")  # a bad p fails here, not after the CF training
        return settings

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
