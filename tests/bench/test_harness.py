"""The benchmark harness on a tiny real run: ml-100k, MF, rns + dns, 2 seeds, 1 epoch, 16-d."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from recbole_hnlm.bench import harness
from recbole_hnlm.bench.harness import (
    Arm,
    BenchSettings,
    parse_arm_config,
    parse_arms,
    parse_negatives,
    run_bench,
    summarise,
    table_markdown,
)

TINY = {"embedding_size": 16, "train_batch_size": 2048, "show_progress": False, "state": "ERROR"}


def _settings(tmp_path, **kw) -> BenchSettings:
    base = dict(
        dataset="ml-100k",
        models=["MF"],
        arms=parse_arms("rns,dns"),
        seeds=2,
        epochs=1,
        out=str(tmp_path / "results"),
        runs_dir=str(tmp_path / "runs"),
        overrides=dict(TINY),
    )
    base.update(kw)
    return BenchSettings(**base)


def test_tiny_grid_writes_tables_caches_cells_and_analyses(in_tmp, monkeypatch):
    # One split for both seeds: each seed's checkpoint must be re-evaluated on the split it was trained on.
    settings = _settings(in_tmp, analyses=True, fn_batches=1, overrides=dict(TINY, split_seed=2020))
    payload = run_bench(settings)
    folder = in_tmp / "results" / "ml-100k"
    cells = sorted(p.name for p in (folder / "cells").glob("*-seed?.json"))
    assert cells == ["MF-dns-seed0.json", "MF-dns-seed1.json", "MF-rns-seed0.json", "MF-rns-seed1.json"]
    for name in ("table.md", "results.json", "bars.png", "groups.md", "groups.png"):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "false_negatives.md").is_file() and (folder / "false_negatives.png").is_file()
    assert (folder / "bars.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    results = json.loads((folder / "results.json").read_text())
    assert results["settings"]["seeds"] == [2020, 2021]
    rows = results["summary"]["MF"]
    assert set(rows) == {"rns", "dns"}
    for label in ("rns", "dns"):
        entry = rows[label]["metrics"]["ndcg@20"]
        seeds = [json.loads((folder / "cells" / f"MF-{label}-seed{k}.json").read_text()) for k in (0, 1)]
        assert [c["seed"] for c in seeds] == [2020, 2021]
        values = [c["test_result"]["ndcg@20"] for c in seeds]
        assert entry["values"] == values
        assert entry["mean"] == pytest.approx(sum(values) / 2)
        assert entry["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    assert rows["rns"]["metrics"]["recall@10"]["gain_vs_rns"] == 0.0
    best = rows["rns"]["metrics"]["ndcg@20"]["best_baseline"]
    other = "dns" if best == "rns" else "rns"
    assert rows[other]["metrics"]["ndcg@20"]["test"]["n"] == 2
    table = (folder / "table.md").read_text()
    assert "## HNLMBPR" in table or "## MF" in table
    assert "| rns |" in table and "| dns |" in table and "(best)" in table

    # Per-group evaluation with all items and users is RecBole's own test metric (4 decimals there).
    analyses = payload["analyses"]["MF"]
    for label in ("rns", "dns"):
        ours = analyses[label]["groups"]["items:all"]["ndcg@20"][0]
        assert ours == pytest.approx(rows[label]["metrics"]["ndcg@20"]["mean"], abs=1e-4)
        share = analyses[label]["false_negatives"]["selected"][0]
        assert 0.0 < share < 0.5  # a few held-out positives are drawn; most negatives are true ones
        assert "semantic" not in analyses[label]["false_negatives"]  # no store: no semantic negatives
    assert "items:head" in analyses["rns"]["groups"] and "users:sparse" in analyses["rns"]["groups"]

    # A second run trains nothing and analyses nothing: every cell and analysis comes from the cache.
    def no_training(**kwargs):
        raise AssertionError("a cached cell was run again")

    def no_analysis(*args, **kwargs):
        raise AssertionError("a cached analysis was run again")

    monkeypatch.setattr("recbole_hnlm.quick_start.run_hnlm", no_training)
    monkeypatch.setattr("recbole_hnlm.bench.groups.analyse_checkpoint", no_analysis)
    again = run_bench(settings)
    assert again["summary"] == json.loads(json.dumps(payload["summary"]))

    # --cached_only trains nothing: a third seed is reported missing, the rows average the two seeds run.
    partial = run_bench(dataclasses.replace(settings, seeds=3, cached_only=True))
    assert partial["missing_cells"] == ["MF/rns/seed 2022", "MF/dns/seed 2022"]
    assert partial["summary"] == again["summary"]
    table = (folder / "table.md").read_text()
    assert "Not run (2 cells" in table and "| rns | 2 |" in table and "Cells ran on: CPU" in table
    assert all(c["machine"]["cpu_count"] >= 1 for c in payload["cells"])

    # Other settings make the cells stale: they would be run again.
    with pytest.raises(AssertionError, match="cached cell was run again"):
        run_bench(_settings(in_tmp, epochs=2))


def test_run_seeds_trains_only_its_seeds_and_reads_the_others(tmp_path):
    """Two processes share a grid: each trains its seeds' missing cells and reports the rest missing."""
    from recbole_hnlm.bench.harness import METRICS, parse_seeds

    trained: list[tuple[str, int]] = []

    def runner(**kwargs):
        seed = kwargs["config_dict"]["seed"]
        trained.append((kwargs["sampler"], seed))
        result = {m: seed / 10_000 for m in METRICS}
        return {"test_result": result, "best_valid_result": result}

    settings = _settings(tmp_path, seeds=3, run_seeds=[2021])
    first = run_bench(settings, runner)
    assert trained == [("rns", 2021), ("dns", 2021)]
    assert first["missing_cells"] == [
        "MF/rns/seed 2020",
        "MF/dns/seed 2020",
        "MF/rns/seed 2022",
        "MF/dns/seed 2022",
    ]
    trained.clear()
    second = run_bench(dataclasses.replace(settings, run_seeds=[2020, 2022]), runner)
    assert trained == [("rns", 2020), ("dns", 2020), ("rns", 2022), ("dns", 2022)]
    assert second["missing_cells"] == []
    assert second["summary"]["MF"]["rns"]["metrics"]["ndcg@20"]["values"] == [0.202, 0.2021, 0.2022]

    with pytest.raises(ValueError, match=r"--run_seeds \[2023\] are not among"):
        run_bench(dataclasses.replace(settings, run_seeds=[2021, 2023]), runner)
    assert parse_seeds(None) is None and parse_seeds("2020, 2022,") == [2020, 2022]
    with pytest.raises(ValueError, match="'20x' is not an integer seed"):
        parse_seeds("2020,20x")


def test_summary_picks_best_baseline_and_tests_against_it():
    arms = [Arm("rns", "rns"), Arm("dns", "dns"), Arm("hnlm-mix", "hnlm-mix")]
    table = {"rns": [0.10, 0.11, 0.12], "dns": [0.12, 0.13, 0.14], "hnlm-mix": [0.13, 0.15, 0.16]}
    cells = [
        {
            "model": "MF",
            "label": label,
            "seed": 2020 + k,
            "test_result": {"ndcg@20": v},
            "missing_semantic_pairs": 0,
        }
        for label, values in table.items()
        for k, v in enumerate(values)
    ]
    summary = summarise(cells, ["MF"], arms, metrics=["ndcg@20"])["MF"]
    assert summary["dns"]["metrics"]["ndcg@20"]["best_baseline"] == "dns"  # hnlm-mix is not a baseline
    assert summary["dns"]["metrics"]["ndcg@20"]["test"] is None
    assert summary["dns"]["metrics"]["ndcg@20"]["gain_vs_rns"] == pytest.approx(0.13 / 0.11 - 1)
    test = summary["hnlm-mix"]["metrics"]["ndcg@20"]["test"]
    # differences vs dns: 0.01, 0.02, 0.02 -> t = mean / (sd / sqrt 3)
    d = [0.01, 0.02, 0.02]
    mean = sum(d) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 2)
    assert test["statistic"] == pytest.approx(mean / (sd / math.sqrt(3)), rel=1e-6)
    assert test["n"] == 3


def test_table_says_when_the_gain_baseline_was_not_run(tmp_path):
    """A subset run (SAMPLERS=dns) has no `rns` row: the table says so instead of bare n/a gains."""
    cell = {"model": "MF", "label": "dns", "seed": 2020, "test_result": {"ndcg@20": 0.2}}
    cells = [{**cell, "missing_semantic_pairs": 0}]
    for labels, noted in (("dns", True), ("rns,dns", False)):
        settings = _settings(tmp_path, arms=parse_arms(labels), seeds=1)
        summary = summarise(cells, ["MF"], settings.arms, metrics=["ndcg@20"])
        table = table_markdown(summary, settings, metrics=["ndcg@20"])
        assert ("`rns` (not among these samplers: no gains)" in table) is noted


def test_table_marks_only_a_baseline_best(tmp_path):
    """A semantic arm run alone (SAMPLERS=hnlm-mix) has nothing to be tested against: n/a, not `(best)`."""
    cell = {"model": "MF", "seed": 2020, "test_result": {"ndcg@20": 0.2}, "missing_semantic_pairs": 0}
    cells = [{**cell, "label": "hnlm-mix"}, {**cell, "label": "dns", "test_result": {"ndcg@20": 0.3}}]
    alone = _settings(tmp_path, arms=parse_arms("hnlm-mix"), seeds=1)
    table = table_markdown(
        summarise(cells, ["MF"], alone.arms, metrics=["ndcg@20"]), alone, metrics=["ndcg@20"]
    )
    assert "| hnlm-mix | 1 | 0.2000 ± 0.0000 | n/a | n/a |" in table
    assert "Best baseline: none (no baseline sampler among these rows)" in table
    both = _settings(tmp_path, arms=parse_arms("dns,hnlm-mix"), seeds=1)
    table = table_markdown(
        summarise(cells, ["MF"], both.arms, metrics=["ndcg@20"]), both, metrics=["ndcg@20"]
    )
    assert "| dns | 1 | 0.3000 ± 0.0000 | n/a | (best) |" in table and "Best baseline: ndcg@20 `dns`" in table


def test_sampler_labels_and_stores(tmp_path):
    arms = parse_arms("rns, hnlm-mix, hnlm-mix@toys, cross:hnlm-mix")
    mix = "hnlm-mix"
    assert arms == [Arm("rns", "rns"), Arm(mix, mix), Arm("hnlm-mix@toys", mix), Arm("cross", mix)]
    assert arms[2].source_dataset == "toys" and not arms[2].is_baseline and arms[0].is_baseline
    with pytest.raises(ValueError, match="unknown sampler"):
        parse_arms("rns,bogus")
    with pytest.raises(ValueError, match="twice"):
        parse_arms("rns,rns")
    one = parse_arms("rns,hnlm-mix")
    assert parse_negatives(["stores/h-{seed}"], one) == {"hnlm-mix": "stores/h-{seed}"}
    with pytest.raises(ValueError, match="label=PATH"):
        parse_negatives(["x"], arms)
    assert parse_negatives(["hnlm-mix@toys=a", "cross=b"], arms) == {"hnlm-mix@toys": "a", "cross": "b"}
    resolver = harness.StoreResolver(_settings(tmp_path, arms=one, negatives={"hnlm-mix": "s/{seed}"}))
    assert resolver(one[1], "MF", 2021) == "s/2021"
    assert resolver(one[0], "MF", 2021) is None


def test_a_pipeline_store_needs_a_fixed_split(tmp_path):
    """Without split_seed each seed has its own split; one store folder per dataset cannot serve them."""
    resolver = harness.StoreResolver(_settings(tmp_path, arms=parse_arms("rns,hnlm-mix")))
    with pytest.raises(ValueError, match=r"--split_seed=N .* --negatives hnlm-mix=PATH-\{seed\}"):
        resolver(Arm("hnlm-mix", "hnlm-mix"), "MF", 2020)
    assert resolver(Arm("rns", "rns"), "MF", 2020) is None  # baselines need no store


def test_the_fixed_split_is_read_from_config_files_overrides_and_arms(tmp_path):
    """split_seed set in a yaml fixes the split too (table note, store seed); --key=value and an arm's
    --arm_config win over it, as in RecBole's own priority."""
    from recbole_hnlm.bench.harness import split_note

    yaml = tmp_path / "split.yaml"
    yaml.write_text("split_seed: 7\nepochs: 3\n")
    settings = _settings(tmp_path, arms=parse_arms("rns,hnlm-mix"), config_files=[str(yaml)])
    assert settings.split_seed() == 7 and settings.split_seed("hnlm-mix") == 7
    assert split_note(settings).startswith("one split (split_seed 7)")
    overridden = dataclasses.replace(
        settings, overrides={"split_seed": "2020"}, arm_overrides={"hnlm-mix": {"split_seed": 9}}
    )
    assert overridden.split_seed() == 2020 and overridden.split_seed("hnlm-mix") == 9
    assert split_note(_settings(tmp_path)).startswith("each seed: its own random split")

    built: list[int] = []
    resolver = harness.StoreResolver(settings)
    resolver._build = lambda arm, model, seed: built.append(seed) or tmp_path / "store"
    assert resolver(settings.arms[1], "MF", 2021) == str(tmp_path / "store")
    assert resolver(settings.arms[1], "LightGCN", 2022) == str(tmp_path / "store")
    assert built == [7]  # one store for the split, whatever the training seed

    yaml.write_text("- not a mapping\n")
    with pytest.raises(ValueError, match=r"--config_files .*split.yaml: expected a yaml mapping"):
        settings.split_seed()


def test_arm_config_reaches_only_its_arm(tmp_path):
    """--arm_config prompt:KEY=VALUE changes the prompt cells' config and key, no other cell's."""
    from recbole_hnlm.bench.harness import cell_key

    arms = parse_arms("rns,prompt")
    per_arm = parse_arm_config(["prompt:semantic_missing=random", "prompt:semantic_alpha=0.2"], arms)
    assert per_arm == {"prompt": {"semantic_missing": "random", "semantic_alpha": "0.2"}}
    plain = _settings(tmp_path, arms=arms, overrides={"split_seed": 2020})
    tuned = dataclasses.replace(plain, arm_overrides=per_arm)
    assert tuned.cell_config(2021, "prompt") == {
        **plain.cell_config(2021, "prompt"),
        "semantic_missing": "random",
        "semantic_alpha": "0.2",
    }
    assert tuned.cell_config(2021, "rns") == plain.cell_config(2021, "rns")
    assert cell_key(tuned, "MF", arms[0], 2021, None) == cell_key(plain, "MF", arms[0], 2021, None)
    assert cell_key(tuned, "MF", arms[1], 2021, "s") != cell_key(plain, "MF", arms[1], 2021, "s")
    with pytest.raises(ValueError, match="no sampler labelled 'hnlm-mix'"):
        parse_arm_config(["hnlm-mix:semantic_missing=random"], arms)
    with pytest.raises(ValueError, match="LABEL:KEY=VALUE"):
        parse_arm_config(["prompt:semantic_missing"], arms)


def test_data_path_accepts_the_dataset_folder(tmp_path):
    (tmp_path / "toys").mkdir()
    (tmp_path / "toys" / "toys.inter").write_text("")
    assert harness.normalise_data_path(str(tmp_path / "toys"), "toys") == str(tmp_path)
    assert harness.normalise_data_path(str(tmp_path), "toys") == str(tmp_path)


def test_performance_page_gathers_speed_benchmarks(tmp_path):
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("performance", REPO / "benchmarks" / "performance.py")
    performance = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(performance)
    (tmp_path / "toys").mkdir()  # an accuracy grid folder: not a speed benchmark
    (tmp_path / "speed.json").write_text(
        json.dumps(
            {"command": "python x.py", "machine": {"cpu_count": 2}, "results": {"a": {"ratio_vs_b": 1.25}}}
        )
    )
    (tmp_path / "speed.md").write_text("# Speed\n\n| a | b |\n")
    page = performance.gather(tmp_path)
    assert "## speed" in page and "`results.a.ratio_vs_b` | 1.25" in page and "| a | b |" in page
    assert "toys" not in page


def test_store_based_sampler_per_seed_store_and_semantic_false_negatives(toys_slice, in_tmp):
    from tests.conftest import build_store_for

    config = {**TINY, **toys_slice["config"]}
    # One store per seed ({seed} in the path): each seed has its own split, so its own training pairs.
    for seed in (2020, 2021):
        build_store_for("HNLMBPR", toys_slice["dataset"], {**config, "seed": seed}, in_tmp / f"store-{seed}")
    settings = _settings(
        in_tmp,
        dataset=toys_slice["dataset"],
        arms=parse_arms("rns,hnlm-mix"),
        negatives={"hnlm-mix": str(in_tmp / "store-{seed}")},
        overrides=config,
        analyses=True,
        fn_batches=1,
    )
    payload = run_bench(settings)
    rows = payload["summary"]["MF"]
    assert rows["hnlm-mix"]["missing_semantic_pairs"] == 0
    assert rows["hnlm-mix"]["metrics"]["ndcg@20"]["best_baseline"] == "rns"
    assert rows["hnlm-mix"]["metrics"]["ndcg@20"]["test"]["n"] == 2
    cells = [c for c in payload["cells"] if c["label"] == "hnlm-mix"]
    assert sorted(c["negatives"] for c in cells) == [str(in_tmp / "store-2020"), str(in_tmp / "store-2021")]
    fn = payload["analyses"]["MF"]["hnlm-mix"]["false_negatives"]
    assert 0.0 <= fn["semantic"][0] <= 1.0  # the adapted semantic negatives were checked too
    assert "semantic" not in payload["analyses"]["MF"]["rns"]["false_negatives"]
    fn_table = (in_tmp / "results" / toys_slice["dataset"] / "false_negatives.md").read_text()
    assert "| MF | hnlm-mix | 2 |" in fn_table


def test_finished_cell_of_a_pipeline_built_store_is_keyed_by_the_store_it_names(tmp_path):
    """--cached_only, no --negatives: a store cell is finished when its key matches the store it recorded."""
    from recbole_hnlm.bench.harness import cell_key, cell_path, finished_cell
    from recbole_hnlm.io import atomic_write_json

    settings = _settings(tmp_path, arms=parse_arms("rns,hnlm-mix"))
    mix_arm = settings.arms[1]
    store = str(tmp_path / "artifacts" / "ml-100k" / "negatives" / "hnlm-factored")  # the default mode's
    key = cell_key(settings, "MF", mix_arm, 2021, store)
    cell = {"key": key, "negatives": store, "seed": 2021}
    atomic_write_json(cell_path(settings, "MF", "hnlm-mix", 1), cell)
    assert finished_cell(settings, "MF", mix_arm, 1) == {"key": key, "negatives": store, "seed": 2021}
    assert finished_cell(settings, "MF", mix_arm, 0) is None  # seed 2020 never ran
    # given another store on the command line, the cell made with the pipeline's one is stale
    given = dataclasses.replace(settings, negatives={"hnlm-mix": str(tmp_path / "other")})
    assert finished_cell(given, "MF", mix_arm, 1) is None
    assert finished_cell(dataclasses.replace(settings, epochs=2), "MF", mix_arm, 1) is None


def test_a_cell_keyed_under_another_spelling_of_the_same_data_folder_is_finished(tmp_path, monkeypatch):
    from recbole_hnlm.bench.harness import cell_key, cell_path, finished_cell
    from recbole_hnlm.io import atomic_write_json

    (tmp_path / "shared" / "data" / "ml-100k").mkdir(parents=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    absolute = _settings(tmp_path, data_path=str(tmp_path / "shared" / "data"))
    rns = absolute.arms[0]
    key = cell_key(absolute, "MF", rns, 2020, None)
    atomic_write_json(cell_path(absolute, "MF", "rns", 0), {"key": key, "seed": 2020})
    relative = dataclasses.replace(absolute, data_path="../shared/data")
    assert cell_key(relative, "MF", rns, 2020, None) != key  # the key itself holds the spelling
    assert finished_cell(relative, "MF", rns, 0) == {"key": key, "seed": 2020}
    elsewhere = dataclasses.replace(absolute, data_path=str(tmp_path / "repo"))  # another folder: not it
    assert finished_cell(elsewhere, "MF", rns, 0) is None


def test_a_cell_whose_store_another_mode_built_is_stale(tmp_path, capsys):
    """The key holds the store a cell recorded: a pair store's cell under the factored default runs again,
    and is finished once the arm asks for the pair mode by name (that arm's own key)."""
    from recbole_hnlm.bench.harness import cell_key, cell_path, finished_cell
    from recbole_hnlm.io import atomic_write_json

    settings = _settings(tmp_path, arms=parse_arms("rns,hnlm-mix"))
    mix_arm = settings.arms[1]
    negatives = tmp_path / "artifacts" / "ml-100k" / "negatives"
    for store, expected in ((negatives / "hnlm-factored", True), (negatives / "hnlm", False)):
        cell = {
            "key": cell_key(settings, "MF", mix_arm, 2021, str(store)),
            "negatives": str(store),
            "seed": 2021,
        }
        atomic_write_json(cell_path(settings, "MF", "hnlm-mix", 1), cell)
        assert (finished_cell(settings, "MF", mix_arm, 1) == cell) is expected
    assert "stale MF-hnlm-mix-seed1.json: its store is not a factored store" in capsys.readouterr().out
    pair = dataclasses.replace(settings, arm_overrides={"hnlm-mix": {"hnlm_store_mode": "pair"}})
    cell = {
        "key": cell_key(pair, "MF", mix_arm, 2021, str(negatives / "hnlm")),
        "negatives": str(negatives / "hnlm"),
    }
    atomic_write_json(cell_path(pair, "MF", "hnlm-mix", 1), cell)
    assert finished_cell(pair, "MF", mix_arm, 1) == cell


def test_a_cell_is_stale_once_its_store_or_config_file_changed(tmp_path):
    """Same key (same paths), other contents: a store rebuilt in place or an edited yaml reruns the cell;
    an input missing on this machine cannot be checked and keeps the recorded cell."""
    from recbole_hnlm.bench.harness import cell_inputs, cell_key, cell_path, finished_cell
    from recbole_hnlm.io import atomic_write_json

    store, yaml = tmp_path / "hnlm-factored", tmp_path / "my.yaml"  # a store of the default mode
    store.mkdir()
    (store / "meta.json").write_text('{"created": "monday"}')
    yaml.write_text("learning_rate: 0.001\n")
    settings = _settings(tmp_path, arms=parse_arms("rns,hnlm-mix"), config_files=[str(yaml)])
    mix_arm = settings.arms[1]
    key = cell_key(settings, "MF", mix_arm, 2020, str(store))
    cell = {"key": key, "negatives": str(store), "inputs": cell_inputs(settings, str(store))}
    atomic_write_json(cell_path(settings, "MF", "hnlm-mix", 0), cell)
    assert finished_cell(settings, "MF", mix_arm, 0) == cell

    (store / "meta.json").write_text('{"created": "tuesday"}')  # rebuilt in place
    assert finished_cell(settings, "MF", mix_arm, 0) is None
    (store / "meta.json").write_text('{"created": "monday"}')
    yaml.write_text("learning_rate: 0.01\n")  # edited
    assert finished_cell(settings, "MF", mix_arm, 0) is None
    yaml.write_text("learning_rate: 0.001\n")
    assert finished_cell(settings, "MF", mix_arm, 0) == cell

    (store / "meta.json").unlink()  # a fresh clone: the store is not here, the committed cell stands
    assert finished_cell(settings, "MF", mix_arm, 0) == cell
    (store / "meta.json").write_text('{"created": "tuesday"}')
    legacy = {k: v for k, v in cell.items() if k != "inputs"}  # written before inputs were recorded
    atomic_write_json(cell_path(settings, "MF", "hnlm-mix", 0), legacy)
    assert finished_cell(settings, "MF", mix_arm, 0) == legacy  # nothing recorded to compare: key alone


def test_a_cell_is_stale_once_a_default_it_resolved_changed(tmp_path, monkeypatch, capsys):
    """The key holds the overrides only; a yaml default changed since the cell ran (here dnsmn_n)
    makes it stale, naming the key. A key added since, absent from the record, changes nothing."""
    from recbole_hnlm.bench import cells
    from recbole_hnlm.bench.harness import cell_inputs, cell_key, cell_path, finished_cell
    from recbole_hnlm.io import atomic_write_json

    settings = _settings(tmp_path, arms=parse_arms("dnsmn"))
    dnsmn = settings.arms[0]
    resolved = cells.resolved_values(settings, "MF", dnsmn, 2020, None)
    assert resolved["neg_sampler"] == '"dnsmn"' and resolved["dnsmn_n"] == "2"
    assert "seed" not in resolved and "data_path" not in resolved and "device" not in resolved
    cell = {
        "key": cell_key(settings, "MF", dnsmn, 2020, None),
        "inputs": cell_inputs(settings, None, resolved),
    }
    atomic_write_json(cell_path(settings, "MF", "dnsmn", 0), cell)
    assert finished_cell(settings, "MF", dnsmn, 0) == cell

    real = cells.resolved_values
    monkeypatch.setattr(cells, "resolved_values", lambda *a: {**real(*a), "a_key_added_since": "1"})
    assert finished_cell(settings, "MF", dnsmn, 0) == cell
    monkeypatch.setattr(cells, "resolved_values", lambda *a: {**real(*a), "dnsmn_n": "3"})
    assert finished_cell(settings, "MF", dnsmn, 0) is None
    assert "stale MF-dnsmn-seed0.json: dnsmn_n (was 2, now 3) changed" in capsys.readouterr().out
