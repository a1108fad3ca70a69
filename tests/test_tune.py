"""Hyper-parameter search: params files, Ray Tune with ASHA on a real slice, RecBole's hyperopt path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import recbole_hnlm  # noqa: F401  (compat shims, model registry)
from recbole_hnlm.cli import main
from recbole_hnlm.config import PROPERTIES_DIR, make_config
from recbole_hnlm.registry import resolve_model_name
from recbole_hnlm.tune import (
    ParamsFileError,
    hyperopt_params_dict,
    parse_params_file,
    ray_space,
    report,
    storage_kwargs,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# which model's config must know every key of a shipped space
SPACE_MODELS = {"mf": "MF", "ngcf": "NGCF", "sgl": "SGL", "simgcl": "SimGCL"}


@pytest.fixture(scope="module")
def toys_slice(tmp_path_factory) -> Path:
    """The first 600 users of the real toys data (about 9k interactions), as a RecBole dataset folder."""
    source = SHARED_DATA / "toys" / "toys.inter"
    if not source.is_file():
        pytest.skip(f"real data {source} not present")
    root = tmp_path_factory.mktemp("data")
    (root / "toys").mkdir()
    users: set[str] = set()
    lines = []
    with open(source, encoding="utf-8") as handle:
        header = next(handle)
        for line in handle:
            user = line.split("\t", 1)[0]
            if user not in users:
                if len(users) == 600:
                    break
                users.add(user)
            lines.append(line)
    (root / "toys" / "toys.inter").write_text(header + "".join(lines), encoding="utf-8")
    return root


def test_every_shipped_space_parses_and_names_real_config_keys():
    from recbole.trainer import HyperTuning

    files = sorted((PROPERTIES_DIR / "hyper").glob("*.hyper"))
    assert {f.stem for f in files} >= {"hnlm", "hnlm-mix", "lightgcn", "mf", "dns", "mixgcf"}
    configs: dict[str, set[str]] = {}
    for file in files:
        specs = parse_params_file(file)
        model = SPACE_MODELS.get(file.stem, "LightGCN")
        if model not in configs:
            configs[model] = set(make_config(resolve_model_name(model), "ml-100k").final_config_dict)
        unknown = [s.name for s in specs if s.name not in configs[model]]
        assert not unknown, f"{file.name}: {unknown} are not config keys of {model}"
        # the files stay in RecBole's own syntax: its parser (run_hyper.py, HyperTuning) reads them too
        assert set(HyperTuning._build_space_from_file(str(file))) == {s.name for s in specs}


def test_the_default_designs_space_covers_its_knobs():
    names = {s.name for s in parse_params_file(PROPERTIES_DIR / "hyper" / "hnlm.hyper")}
    assert names >= {"aligndns_beta", "aligndns_candidates", "dnsmn_n", "learning_rate"}


def test_the_mix_mode_space_covers_the_method_knobs():
    names = {s.name for s in parse_params_file(PROPERTIES_DIR / "hyper" / "hnlm-mix.hyper")}
    assert names >= {
        "semantic_alpha",
        "semantic_cl_weight",
        "semantic_cl_temperature",
        "adapter_hidden_sizes",
        "semantic_margin",
    }


@pytest.mark.parametrize(
    "line, message",
    [
        ("learning_rate uniform 0.1", "needs 2 comma-separated numbers"),
        ("learning_rate gaussian 0,1", "unknown kind"),
        ("n_layers choice [1,2", "n_layers choice"),
        ("lr uniform 0.5,0.1", "must be below"),
        ("lonely", "expected 'name kind values'"),
    ],
)
def test_bad_params_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.hyper"
    path.write_text(f"# a comment line\nreg_weight choice [1e-5]\n{line}\n")
    with pytest.raises(ParamsFileError, match=message) as err:
        parse_params_file(path)
    assert f"{path}, line 3" in str(err.value)


def test_spaces_keep_recbole_semantics(tmp_path):
    path = tmp_path / "s.hyper"
    path.write_text(
        "learning_rate loguniform -6.9,-2.3\nsizes choice [[64],[128,64]]\nk quniform 8,64,8\na uniform 0,1\n"
    )
    specs = parse_params_file(path)
    space = ray_space(specs)
    assert math.isclose(space["learning_rate"].lower, math.exp(-6.9))  # RecBole: bounds in log space
    assert math.isclose(space["learning_rate"].upper, math.exp(-2.3))
    assert space["sizes"].categories == [[64], [128, 64]]
    assert hyperopt_params_dict(specs) == {
        "loguniform": {"learning_rate": [-6.9, -2.3]},
        "choice": {"sizes": [[64], [128, 64]]},
        "quniform": {"k": [8.0, 64.0, 8.0]},
        "uniform": {"a": [0.0, 1.0]},
    }


def test_version_dependent_ray_calls(tmp_path, monkeypatch):
    import ray
    from ray import tune

    monkeypatch.setattr(ray, "__version__", "2.6.3")
    assert storage_kwargs(tmp_path) == {"local_dir": str(tmp_path)}
    monkeypatch.setattr(ray, "__version__", "2.60.0")
    assert storage_kwargs(tmp_path) == {"storage_path": str(tmp_path)}

    seen = []

    def new_style(metrics, *, checkpoint=None):  # ray >= 2.7: tune.report(metrics: dict)
        seen.append(metrics)

    monkeypatch.setattr(tune, "report", new_style)
    report({"valid_score": 0.5})
    assert seen == [{"valid_score": 0.5}]


def test_ray_tune_four_trials_with_asha_on_a_toys_slice(toys_slice, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "tune"
    code = main(
        [
            "tune",
            "--model=LightGCN",
            "--dataset=toys",
            f"--data_path={toys_slice}",
            "--params=properties/hyper/lightgcn.hyper",  # resolved inside the package from any folder
            "--samples=4",
            "--max-epochs=4",
            # one trial at a time on the 2 CPUs: ASHA compares each trial with the ones before it
            "--cpus-per-trial=2",
            "--num-cpus=2",
            "--seed=0",
            f"--output={out}",
        ]
    )
    assert code == 0
    summary = json.loads((out / "results.json").read_text())
    assert summary["tool"] == "ray" and summary["model"] == "HNLMLightGCN"
    assert len(summary["trials"]) == 4 and summary["counts"]["error"] == 0
    assert summary["counts"]["stopped early"] >= 1  # ASHA fed by per-epoch validation reports
    stopped = [t for t in summary["trials"] if t["status"] == "stopped early"]
    assert all(t["epochs"] < 4 and not t["test_result"] for t in stopped)
    best = summary["best"]
    assert best["status"] == "completed" and best["epochs"] == 4
    assert set(best["params"]) == {"learning_rate", "reg_weight", "n_layers"}
    assert best["best_valid_score"] == max(
        t["best_valid_score"] for t in summary["trials"] if t["status"] == "completed"
    )
    assert set(best["test_result"]) == {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}
    assert "## Best configuration" in (out / "results.md").read_text()
    assert not list(out.glob("ray/*/checkpoints/*.pth"))  # trial checkpoints were only for the test epoch


def test_hyperopt_path_runs_recbole_hypertuning_with_the_plugin_objective(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "hyperopt"
    code = main(
        [
            "tune",
            "--model=MF",
            "--dataset=ml-100k",
            "--params=mf",
            "--tool=hyperopt",
            "--algo=random",
            "--samples=2",
            "--max-epochs=1",
            "--seed=3",
            f"--output={out}",
            "--train_batch_size=8192",
        ]
    )
    assert code == 0
    summary = json.loads((out / "results.json").read_text())
    assert summary["tool"] == "hyperopt" and summary["model"] == "HNLMBPR"
    assert [t["status"] for t in summary["trials"]] == ["completed", "completed"]
    assert str(summary["fixed_overrides"]["train_batch_size"]) == "8192"  # a fixed override, every trial
    assert summary["best"]["best_valid_score"] == max(t["best_valid_score"] for t in summary["trials"])
    assert set(summary["best"]["params"]) == {"learning_rate", "embedding_size"}
