"""Start-up of the plugin in a process: what ``import recbole_hnlm`` runs (and DDP ranks run themselves).

:func:`bootstrap` applies the compatibility shims, hooks the registered models into RecBole
(:func:`recbole_hnlm.config.install`), fixes RecBole's Ray reporting and its logging; each step is idempotent.
"""

from __future__ import annotations


def bootstrap() -> None:
    """Apply the compatibility shims and register the plugin's models in RecBole (idempotent)."""
    from recbole_hnlm import compat

    compat.apply()
    from recbole_hnlm.config import install

    install()
    from recbole_hnlm import ray_compat, run_logging

    ray_compat.apply()
    run_logging.apply()
