"""RecBole 1.2.1 on today's numpy / scipy / torch / Ray: the only place for shims.

Each fix names the failure it prevents (see the project notes, ``recbole.md`` §2):

* E2/E3/E7 - numpy 2 removed aliases that ray 2.6.3 (``np.bool8``) and RecBole (``np.float_``,
  and ``np.float`` in ``Dataset._fill_nan`` when a pickled config skips RecBole's own alias hack) read.
* E5 - scipy >= 1.13 removed ``dok_matrix._update``, used by LightGCN/NGCF to build the adjacency.
* E4 - torch >= 2.6 loads with ``weights_only=True``; RecBole checkpoints pickle the whole ``Config``.
  ``torch.load`` therefore defaults ``weights_only`` to False when the caller does not pass it; only
  load checkpoints you produced yourself. Callers that pass the flag keep their choice.

``apply()`` is idempotent and runs on ``import recbole_hnlm``. Ray workers and DDP children import the
package too, so they get the same fixes.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

_NUMPY_ALIASES = {
    "bool8": np.bool_,
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "string_": np.bytes_,
    "float": float,
    "int": int,
    "bool": bool,
    "object": object,
    "str": str,
    "long": int,
    "unicode": str,
    "complex": complex,
}

_applied = False


def _patch_numpy() -> None:
    for name, value in _NUMPY_ALIASES.items():
        # numpy 2 raises AttributeError for removed names; hasattr would warn on deprecated ones.
        if name not in np.__dict__:
            setattr(np, name, value)


def _patch_scipy() -> None:
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):

        def _update(self, data: dict) -> None:
            self._dict.update(data)

        sp.dok_matrix._update = _update


def _patch_torch_load() -> None:
    import torch

    if getattr(torch.load, "_recbole_hnlm", False):
        return
    original = torch.load

    @functools.wraps(original)
    def load(*args, **kwargs):
        # RecBole's checkpoints hold a pickled Config object, which weights_only=True rejects.
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    load._recbole_hnlm = True
    torch.load = load


def apply() -> None:
    """Install every shim once (safe to call repeatedly, in any process)."""
    global _applied
    if _applied:
        return
    _patch_numpy()
    _patch_scipy()
    _patch_torch_load()
    # thop (a RecBole dependency) and ray 2.6.3 warn on import about deprecated APIs; not actionable.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="thop")
    _applied = True
