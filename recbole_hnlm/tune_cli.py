"""Arguments of ``recbole-hnlm tune`` (kept apart from :mod:`recbole_hnlm.tune`, which imports RecBole).

RecBole's own ``run_hyper.py`` spellings are accepted too: ``--params_file`` for ``--params`` and
``--tool Hyperopt`` / ``--tool Ray`` (any case).
"""

from __future__ import annotations

import argparse
from typing import Any

TOOLS = ("ray", "hyperopt")
HYPEROPT_ALGOS = ("exhaustive", "random", "bayes")


def _option(group: Any, name: str, **kwargs: Any) -> None:
    """``--max-epochs`` and ``--max_epochs`` alike (the plugin's other commands use underscores)."""
    group.add_argument(f"--{name.replace('_', '-')}", f"--{name}", dest=name, **kwargs)


def tool_name(text: str) -> str:
    """``ray``/``hyperopt`` in any case (RecBole writes ``Ray`` and ``Hyperopt``)."""
    return text.strip().lower()


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", "-m", default="LightGCN", help="MF/BPR, LightGCN, NGCF, SGL, SimGCL, HNLM*"
    )
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument(
        "--params",
        "--params_file",
        "--params-file",
        dest="params",
        required=True,
        help="params file, e.g. properties/hyper/lightgcn.hyper, or its name (lightgcn)",
    )
    parser.add_argument(
        "--tool",
        type=tool_name,
        choices=TOOLS,
        default="ray",
        help="Ray Tune + ASHA, or RecBole's hyperopt (RecBole's Ray/Hyperopt spellings work too)",
    )
    parser.add_argument("--samples", type=int, default=8, help="trials (hyperopt: max evals)")
    _option(parser, "max_epochs", type=int, default=10, help="epochs per trial (ASHA's budget)")
    parser.add_argument(
        "--sampler", default=None, help="as in `train` (default: hnlm with --negatives, else rns)"
    )
    parser.add_argument("--negatives", default=None, help="a semantic-negative store folder (HNLM knobs)")
    parser.add_argument("--config_files", default=None, help="RecBole yaml files, space separated")
    parser.add_argument(
        "--output", default=None, help="results folder (default <output_dir>/<dataset>/tune-*)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the search (which configs are drawn)")
    ray_group = parser.add_argument_group("Ray Tune")
    _option(ray_group, "cpus_per_trial", type=float, default=1.0)
    _option(ray_group, "gpus_per_trial", type=float, default=0.0)
    _option(ray_group, "ray_address", default=None, help="address of a running Ray cluster (default: local)")
    _option(ray_group, "num_cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    _option(ray_group, "grace_period", type=int, default=1, help="ASHA: epochs before a trial can be stopped")
    _option(ray_group, "reduction_factor", type=int, default=2, help="ASHA: keep 1/factor at each rung")
    hyperopt_group = parser.add_argument_group("hyperopt (RecBole HyperTuning)")
    hyperopt_group.add_argument("--algo", choices=HYPEROPT_ALGOS, default="random")
    _option(hyperopt_group, "early_stop", type=int, default=10, help="stop after N trials without progress")
    parser.epilog = "Any other --key=value is a fixed RecBole/plugin config override for every trial."
