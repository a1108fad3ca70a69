"""Arguments of the stage commands (``profiles``, ``negatives``, ``finetune``, ``infer``).

Kept apart from the stages themselves so that ``recbole-hnlm <stage> --help`` imports neither torch nor
RecBole; each stage module's ``run`` reads what these parsers produce.
"""

from __future__ import annotations

import argparse

NEGATIVE_MODES = ("interaction", "user")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``profiles`` and ``negatives``; unset flags fall back to the config, then defaults."""
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--config_files", nargs="*", default=None)
    parser.add_argument("--model", default="HNLMLightGCN", help="model whose config shapes the split")
    parser.add_argument("--artifact_dir", default=None)
    parser.add_argument(
        "--backend", dest="llm_backend", default=None, help="openai | ollama | llamacpp | transformers"
    )
    parser.add_argument("--llm_model", default=None, help="model name (servers) or model path (local)")
    parser.add_argument("--base_url", dest="llm_base_url", default=None)
    parser.add_argument(
        "--api_key_env", dest="llm_api_key_env", default=None, help="env var holding the API key"
    )
    parser.add_argument("--concurrency", dest="llm_concurrency", type=int, default=None)
    parser.add_argument("--timeout", dest="llm_timeout", type=float, default=None)
    parser.add_argument("--retries", dest="llm_retries", type=int, default=None)
    parser.add_argument("--max_tokens", dest="llm_max_tokens", type=int, default=None)
    parser.add_argument("--temperature", dest="llm_temperature", type=float, default=None)
    parser.add_argument("--max_repairs", dest="llm_max_repairs", type=int, default=None)
    parser.add_argument("--prompt_max_tokens", type=int, default=None)
    parser.add_argument(
        "--no_retry_failed",
        dest="llm_retry_failed",
        action="store_const",
        const=False,
        default=None,
        help="keep records that failed on an earlier run instead of sending them again",
    )
    parser.add_argument("--embedder", default=None, help="sentence-transformers | openai | ollama")
    parser.add_argument("--embedder_model", default=None)
    parser.add_argument("--embedder_base_url", default=None)
    parser.add_argument("--no_progress", action="store_true")


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``finetune`` and ``infer``: dataset and config; ``--key=value`` overrides the rest."""
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--model", default="LightGCN", help="model whose config shapes the split")
    parser.add_argument("--config_files", nargs="*", default=None)
    parser.add_argument("--no_progress", action="store_true")


def configure_profiles(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--embed", action="store_true", help="also embed the profiles (RLMRec baseline)")
    parser.add_argument("--max_items", type=int, default=None, help="only the first N items (smoke runs)")
    parser.add_argument("--max_users", type=int, default=None, help="only the first N users (smoke runs)")


def configure_negatives(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    # unset flags read the config (prompt_negatives_mode, prompt_negatives_k), as the pipeline does
    parser.add_argument(
        "--mode", choices=NEGATIVE_MODES, default=None, help="default: config key prompt_negatives_mode"
    )
    parser.add_argument(
        "--k", type=int, default=None, help="negatives per user in --mode user (default: prompt_negatives_k)"
    )


def configure_finetune(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument("--force", action="store_true", help="rebuild supervision and adapter even if cached")
    parser.epilog = (
        "Builds the CF supervision set if missing (profiles must exist unless --hnlm_use_profiles=false), "
        "then fine-tunes. Settings are config keys: --hnlm_embedder_model=..., --hnlm_ft_epochs=..., "
        "--hnlm_sup_size=..., --hnlm_ft_tau=..."
    )


def configure_item_vectors(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument(
        "--adapter",
        default=None,
        help="embed the items with this fine-tuned adapter (`finetune`'s folder), the space of its store's "
        "vectors (semdns_query: store); default: the configured sentence embedder (embedder, embedder_model)",
    )
    parser.epilog = (
        "Writes <artifact_dir>/<dataset>/item_vectors/<embedder model>/ (reused when it matches the dataset, "
        "the embedder and text_fields) and prints the folder to pass as --item_vectors=..."
    )


def configure_infer(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument(
        "--embedder",
        default=None,
        help="adapter folder written by `finetune` (default: <artifact_dir>/<dataset>/embedder); "
        "an adapter fine-tuned on another dataset gives the generalisation setting",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="store folder (default <artifact_dir>/<dataset>/negatives/hnlm-factored, or hnlm with "
        "--hnlm_store_mode=pair)",
    )
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--force", action="store_true")
