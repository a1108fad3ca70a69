"""The plugin's models. Importing this package registers each one: every model file decorates its class with
:func:`recbole_hnlm.registry.register_model`."""

from recbole_hnlm.models.lightgcn import HNLMLightGCN
from recbole_hnlm.models.mf import HNLMBPR
from recbole_hnlm.models.ngcf import HNLMNGCF
from recbole_hnlm.models.sgl import HNLMSGL
from recbole_hnlm.models.simgcl import HNLMSimGCL, SimGCL

__all__ = ["HNLMBPR", "HNLMNGCF", "HNLMSGL", "HNLMLightGCN", "HNLMSimGCL", "SimGCL"]
