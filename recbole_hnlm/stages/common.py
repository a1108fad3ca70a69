"""What the stages share: LLM settings from config + CLI, the dataset's training view, a stage command's
config and the artefact folder."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from recbole_hnlm.config_values import config_value, dataset_artifacts, default_of, setting, settings_values
from recbole_hnlm.io import fingerprint
from recbole_hnlm.llm.backends import ChatBackend, GenerationParams, make_backend
from recbole_hnlm.llm.concurrency import RetryPolicy
from recbole_hnlm.llm.embedders import Embedder, SentenceTransformerEmbedder, make_embedder
from recbole_hnlm.llm.prompts import ItemRecord, PromptBudget
from recbole_hnlm.stages.cli import add_common_arguments  # noqa: F401  (the stages' shared flags)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


NON_SHAPING_SETTINGS = frozenset({"llm_retry_failed", "embedder_api_key_env"})


def shaping_settings(settings: Any) -> dict[str, Any]:
    """``settings.as_dict()`` without what does not shape an artefact's content (what fingerprints cover):
    whether failures are retried, and the name of a key's environment variable."""
    return {k: v for k, v in settings.as_dict().items() if k not in NON_SHAPING_SETTINGS}


@dataclass(frozen=True)
class LLMSettings:
    """LLM stage settings; config keys are the field names (defaults: ``properties/overall.yaml``), CLI
    flags override them."""

    llm_backend: str = default_of("llm_backend")
    llm_model: str | None = default_of("llm_model")
    llm_base_url: str | None = default_of("llm_base_url")
    llm_api_key_env: str | None = default_of("llm_api_key_env")
    llm_concurrency: int = default_of("llm_concurrency")
    llm_timeout: float = default_of("llm_timeout")
    llm_retries: int = default_of("llm_retries")
    llm_max_tokens: int = default_of("llm_max_tokens")
    llm_temperature: float = default_of("llm_temperature")
    llm_seed: int = default_of("llm_seed")
    llm_max_repairs: int = default_of("llm_max_repairs")
    llm_retry_failed: bool = default_of("llm_retry_failed")
    profile_summary_chars: int = default_of("profile_summary_chars")
    profile_reasoning_chars: int = default_of("profile_reasoning_chars")
    negative_reasoning_chars: int = default_of("negative_reasoning_chars")
    prompt_max_tokens: int = default_of("prompt_max_tokens")
    item_noun: str = default_of("item_noun")
    embedder: str = default_of("embedder")
    embedder_model: str | None = default_of("embedder_model")
    embedder_base_url: str | None = default_of("embedder_base_url")
    embedder_batch_size: int = default_of("embedder_batch_size")
    embedder_api_key_env: str | None = default_of("embedder_api_key_env")

    @classmethod
    def resolve(cls, config: Mapping[str, Any] | Any, args: argparse.Namespace | None = None) -> LLMSettings:
        def lookup(name: str) -> Any:
            cli = getattr(args, name, None)
            return cli if cli is not None else config_value(config, name)

        return cls(**settings_values(cls, lookup))

    @property
    def params(self) -> GenerationParams:
        return GenerationParams(self.llm_max_tokens, self.llm_temperature, self.llm_seed)

    @property
    def budget(self) -> PromptBudget:
        return PromptBudget(max_tokens=self.prompt_max_tokens)

    def backend(self) -> ChatBackend:
        retry = RetryPolicy(retries=self.llm_retries)
        options: dict[str, Any] = {
            "max_concurrency": self.llm_concurrency,
            "timeout": self.llm_timeout,
            "retry": retry,
        }
        if self.llm_backend in ("openai", "ollama"):
            options.update(base_url=self.llm_base_url, model=self.llm_model)
        if self.llm_backend == "openai":
            options["api_key_env"] = self.llm_api_key_env
        if self.llm_backend in ("llamacpp", "transformers"):
            options = {"model_path": self.llm_model, "max_concurrency": self.llm_concurrency}
        return make_backend(self.llm_backend, **options)

    def make_embedder(self) -> Embedder:
        options: dict[str, Any] = {"batch_size": self.embedder_batch_size}
        if self.embedder == SentenceTransformerEmbedder.name:  # the local model takes a path, not a URL
            options["model_path"] = self.embedder_model
        else:
            options.update(base_url=self.embedder_base_url, model=self.embedder_model)
        if self.embedder == "openai":
            options["api_key_env"] = self.embedder_api_key_env
        return make_embedder(self.embedder, **options)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingView:
    """What the LLM stages read from a dataset: item text, training histories, training reviews."""

    dataset: str
    dataset_fingerprint: str
    items: dict[str, ItemRecord]
    histories: dict[str, list[str]]  # user token -> item tokens of its training interactions, in order
    reviews: dict[tuple[str, str], str]
    config: Any = None

    @cached_property
    def split_fingerprint(self) -> str:
        """The training interactions themselves: what an LLM reads of a user comes from them, so profiles
        and stores written for one split must not serve another (its test items would leak in)."""
        return fingerprint(sorted(self.histories.items()))


def artifact_root(config: Any, args: argparse.Namespace, dataset: str) -> Path:
    """``<artifact_dir>/<dataset>`` of an LLM stage, whose ``--artifact_dir`` overrides the config's."""
    return dataset_artifacts(config, dataset, getattr(args, "artifact_dir", None))


def artifact_dir(config: Any) -> Path:
    """``<artifact_dir>/<dataset>`` of ``config``: where every stage reads and writes its artefacts."""
    return dataset_artifacts(config)


def stage_config(args: argparse.Namespace) -> Any:
    """The plugin config of a stage command: model, dataset, config files and ``--key=value`` overrides."""
    from recbole_hnlm.config import make_config
    from recbole_hnlm.registry import resolve_model_name

    overrides = dict(getattr(args, "overrides", None) or {})
    parsed = {}
    for key, value in overrides.items():
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return make_config(resolve_model_name(args.model), args.dataset, args.config_files, parsed)


def load_training_view(args: argparse.Namespace) -> TrainingView:
    """Build the plugin config from a stage's command line, then its :func:`training_view`."""
    from recbole_hnlm.config import make_config

    # `--key=value` overrides on the stage's command line are config entries, as for training.
    config_dict: dict[str, Any] = dict(getattr(args, "overrides", None) or {})
    if args.data_path:
        config_dict["data_path"] = args.data_path
    return training_view(make_config(args.model, args.dataset, args.config_files, config_dict))


def training_view(config: Any, split: Any = None) -> TrainingView:
    """Item text, time-ordered training histories and training reviews of ``config``'s dataset and split."""
    import numpy as np

    from recbole_hnlm.data.fingerprint import dataset_fingerprint
    from recbole_hnlm.data.splits import interaction_tokens, load_split
    from recbole_hnlm.data.text import dataset_dir, load_item_text, load_reviews

    split = split if split is not None else load_split(config)
    full = split.dataset
    users, items = interaction_tokens(split.train)
    time_field = config_value(config, "TIME_FIELD")
    if time_field and time_field in split.train.inter_feat:
        order = np.argsort(split.train.inter_feat[time_field].numpy(), kind="stable")
        users, items = users[order], items[order]
    histories: dict[str, list[str]] = {}
    for user, item in zip(users.tolist(), items.tolist()):
        histories.setdefault(str(user), []).append(str(item))
    name = config["dataset"]
    text_fields = config_value(config, "text_fields")
    if not text_fields:
        raise KeyError(f"dataset {name!r}: set the config key 'text_fields' to its .item text columns")
    folder = dataset_dir(config["data_path"], name)
    iid, uid = full.iid_field, full.uid_field
    texts = load_item_text(folder, name, list(text_fields), iid)
    known = [str(t) for t in full.field2id_token[iid][1:]]  # [PAD] is id 0
    pairs = set(zip(users.tolist(), items.tolist()))
    all_reviews = load_reviews(folder, name, setting(config, "review_field"), uid, iid)
    reviews = {pair: text for pair, text in all_reviews.items() if pair in pairs}
    per_item: dict[str, list[str]] = {}
    for (_user, item), text in sorted(reviews.items()):
        per_item.setdefault(item, []).append(text)
    records = {t: ItemRecord(t, texts.get(t, {}), tuple(per_item.get(t, ()))) for t in known}
    return TrainingView(name, dataset_fingerprint(full), records, histories, reviews, config)
