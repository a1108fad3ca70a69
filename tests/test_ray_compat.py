"""RecBole's own objective_function under Ray Tune, on Ray 2.6.3 and on current Ray."""

from __future__ import annotations

import recbole.quick_start
import recbole.quick_start.quick_start as recbole_quick_start

from recbole_hnlm import ray_compat

BASE = {
    "model": "BPR",
    "dataset": "ml-100k",
    "epochs": 1,
    "embedding_size": 16,
    "train_batch_size": 4096,
    "show_progress": False,
    "state": "ERROR",
    "metrics": ["Recall", "NDCG"],
    "topk": [10],
    "valid_metric": "recall@10",
}


def test_recbole_objective_is_replaced_after_import():
    assert recbole.quick_start.objective_function is ray_compat.objective_function
    assert recbole_quick_start.objective_function is ray_compat.objective_function
    assert isinstance(recbole_quick_start.tune, ray_compat._Tune)


def test_keyword_report_reaches_either_ray_api():
    seen = []

    class NewRay:  # Ray >= 2.7: report(metrics: dict)
        @staticmethod
        def report(metrics, *, checkpoint=None):
            seen.append(metrics)

    ray_compat._Tune(NewRay).report(**{"recall@10": 0.5})
    assert seen == [{"recall@10": 0.5}]


def test_outside_a_trial_the_result_dict_is_returned(in_tmp):
    """RecBole's HyperTuning (hyperopt) calls the objective in-process and reads its dict."""
    result = recbole.quick_start.objective_function(config_dict=dict(BASE), saved=False)
    assert set(result) >= {"best_valid_score", "test_result", "valid_score_bigger"}


def test_stock_objective_under_ray_tune_with_asha(in_tmp):
    """tune.run(objective_function) as RecBole's run_hyper.py does it: every trial ends, none errors."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from recbole_hnlm.ray_compat import init_ray
    from recbole_hnlm.tune import storage_kwargs

    started = init_ray(num_cpus=1)  # its worker hook restores numpy 2's removed aliases for Ray 2.6.3
    try:
        analysis = tune.run(
            tune.with_parameters(recbole.quick_start.objective_function, saved=False),
            config={**BASE, "learning_rate": tune.choice([0.01, 0.001])},
            num_samples=2,
            scheduler=ASHAScheduler(metric="recall@10", mode="max", max_t=10, grace_period=1),
            verbose=0,
            **storage_kwargs(in_tmp / "ray"),
        )
    finally:
        if started:
            ray.shutdown()
    assert [t.status for t in analysis.trials] == ["TERMINATED", "TERMINATED"]
    assert all("recall@10" in t.last_result for t in analysis.trials)
