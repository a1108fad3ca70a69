"""recbole-hnlm: RecBole plugin for collaborative filtering with LLM-generated semantic hard negatives.

Importing the package applies the compatibility fixes for RecBole 1.2.1 on today's stack and registers
the plugin's models, so RecBole's own ``run_recbole(model="HNLMLightGCN", ...)``, ``objective_function``
and ``load_data_and_model`` work with them.
"""

from recbole_hnlm import compat

compat.apply()

from recbole_hnlm.registry import install  # noqa: E402

install()

from recbole_hnlm.quick_start import objective_function, run_hnlm  # noqa: E402

__all__ = ["objective_function", "run_hnlm"]
__version__ = "0.1.0"
