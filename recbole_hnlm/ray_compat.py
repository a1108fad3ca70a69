"""RecBole 1.2.1's own tuning on the installed Ray: 2.6.3 (RecBole's pin) or a current Ray (Python 3.12+).

RecBole's ``objective_function`` calls ``tune.report(**test_result)`` and then returns a dict. On Ray >= 2.7
``tune.report`` takes one dict, so the keywords raise ``TypeError``; and on every Ray the returned dict is
recorded as one more result without the metric, which stops ASHA (notes E9). :func:`apply` (run by
``import recbole_hnlm``) therefore

* gives RecBole's quick-start module a ``tune`` whose ``report(**metrics)`` reaches the installed Ray's
  API, and
* puts :func:`objective_function` in place of RecBole's (``recbole.quick_start.objective_function``): it
  runs RecBole's and returns the dict only outside a Ray Tune trial, where RecBole's ``HyperTuning``
  (hyperopt) reads it.

Ray pickles a trainable by reference, so each trial's worker imports this module, hence the package, and
gets the same fixes and the plugin's models.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from recbole_hnlm import compat

_stock_objective: Callable[..., Any] | None = None


def report(metrics: dict[str, Any], tune: Any = None) -> None:
    """Report one result from inside a trial on any Ray 2.x (``tune``: the ``ray.tune`` module to use).

    Ray >= 2.7 has ``tune.report(metrics: dict)``; on 2.6.3 ``tune.report`` takes keyword arguments and
    would file a positional dict under ``_metric``, so ``ray.air.session.report(dict)`` is used there.
    """
    if tune is None:
        from ray import tune
    if "metrics" in inspect.signature(tune.report).parameters:
        tune.report(metrics)
    else:
        from ray.air import session

        session.report(metrics)


def in_trial() -> bool:
    """Whether this code runs inside a Ray Tune trial."""
    try:  # Ray 2.6.3: tune's function trainables hold an AIR session
        from ray.air._internal.session import _get_session

        return _get_session(warn=False) is not None
    except ImportError:  # current Ray
        from ray.train._internal.session import get_session

        return get_session() is not None


class _Tune:
    """``ray.tune`` as RecBole 1.2.1 calls it: ``report(**metrics)`` works on every Ray 2.x."""

    def __init__(self, tune: Any) -> None:
        self._tune = tune

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tune, name)

    def report(self, *args: Any, **metrics: Any) -> None:
        if args:
            self._tune.report(*args, **metrics)
        else:
            report(metrics, self._tune)


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """RecBole's ``objective_function`` (same arguments and result), fit for Ray Tune on any Ray 2.x."""
    apply()
    result = _stock_objective(config_dict=config_dict, config_file_list=config_file_list, saved=saved)
    return None if in_trial() else result


def apply() -> None:
    """Patch RecBole's quick start (idempotent)."""
    global _stock_objective
    if _stock_objective is not None:
        return
    import recbole.quick_start as package
    import recbole.quick_start.quick_start as module

    _stock_objective = module.objective_function
    if not isinstance(module.tune, _Tune):
        module.tune = _Tune(module.tune)
    module.objective_function = objective_function
    package.objective_function = objective_function


def numpy_alias_hook() -> Any:
    """A Ray ``worker_process_setup_hook`` restoring the numpy aliases ray 2.6.3 reads (``np.bool8``).

    Ray workers unpickle Tune's trainable class, which imports ``ray.tune`` (and its ``np.bool8``) before
    any plugin code runs (RecBole's E11). The hook is a closure, so Ray ships it by value: workers run
    it without importing this package (importing ``recbole_hnlm`` in every idle worker is slow); trial
    and actor code imports ``recbole_hnlm`` itself and gets all the shims.
    """
    aliases = dict(compat._NUMPY_ALIASES)

    def restore_numpy_aliases() -> None:
        import numpy

        for name, value in aliases.items():
            if name not in numpy.__dict__:
                setattr(numpy, name, value)

    return restore_numpy_aliases


def init_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    env_vars: dict[str, str] | None = None,
) -> bool:
    """Connect to ``address`` (a running cluster) or start a local Ray; False if Ray was already up.

    Workers get :func:`numpy_alias_hook` and ``OMP_NUM_THREADS`` (this process's value, else 1: trials
    and actors size their torch threads from their CPU share).
    """
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {
        "worker_process_setup_hook": numpy_alias_hook(),
        "env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env_vars or {})},
    }
    if address:
        ray.init(address=address, runtime_env=runtime_env)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, runtime_env=runtime_env)
    return True
