"""recbole-hnlm: RecBole plugin for collaborative filtering with LLM-generated semantic hard negatives.

Importing the package applies the compatibility fixes for RecBole 1.2.1 on today's stack and registers
the plugin's models, so RecBole's own ``run_recbole(model="HNLMLightGCN", ...)``, ``objective_function``
and ``load_data_and_model`` work with them; RecBole's ``objective_function`` reports through the installed
Ray's API (:mod:`recbole_hnlm.ray_compat`).

The one exception is the process that starts the ``recbole-hnlm`` command line (the console script,
``python -m recbole_hnlm`` and ``run_hnlm.py``): there :func:`bootstrap` waits until a subcommand runs, so
``--help`` imports neither torch nor RecBole. ``run_hnlm`` and ``objective_function`` bootstrap on access.
"""

import sys
from pathlib import Path

__all__ = ["bootstrap", "objective_function", "run_hnlm"]
__version__ = "0.1.0"

_CLI_SCRIPTS = frozenset({"recbole-hnlm", "recbole-hnlm.exe", "run_hnlm.py"})
_CLI_MODULES = frozenset({"recbole_hnlm", "recbole_hnlm.__main__", "recbole_hnlm.cli"})
_LAZY = frozenset({"objective_function", "run_hnlm"})


def bootstrap() -> None:
    """Apply the compatibility shims and register the plugin's models in RecBole (idempotent)."""
    from recbole_hnlm import plugin

    plugin.bootstrap()


def _starting_cli() -> bool:
    """True while the command line's own process imports the package (it calls :func:`bootstrap` later)."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if script and Path(script).name in _CLI_SCRIPTS:
        return True
    # `python -m recbole_hnlm[.cli]`: runpy imports the package while sys.argv[0] is still "-m".
    argv = list(getattr(sys, "orig_argv", ()))
    if sys.argv[:1] != ["-m"] or "-m" not in argv:
        return False
    position = argv.index("-m") + 1
    return position < len(argv) and argv[position] in _CLI_MODULES


def __getattr__(name: str):
    if name in _LAZY:
        bootstrap()
        from recbole_hnlm import quick_start

        return getattr(quick_start, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not _starting_cli():
    bootstrap()
