"""The plugin's models. Importing this package registers each one (see :mod:`recbole_hnlm.registry`)."""

from recbole_hnlm.models.lightgcn import HNLMLightGCN
from recbole_hnlm.models.mf import HNLMBPR
from recbole_hnlm.models.ngcf import HNLMNGCF
from recbole_hnlm.models.sgl import HNLMSGL
from recbole_hnlm.models.simgcl import HNLMSimGCL, SimGCL
from recbole_hnlm.registry import register_model

register_model(HNLMBPR, backbone="BPR")
register_model(HNLMLightGCN, backbone="LightGCN")
register_model(HNLMNGCF, backbone="NGCF")
register_model(HNLMSGL, backbone="SGL")
register_model(SimGCL, backbone=None, uses_plugin_loader=False)
register_model(HNLMSimGCL, backbone="SimGCL")

__all__ = ["HNLMBPR", "HNLMNGCF", "HNLMSGL", "HNLMLightGCN", "HNLMSimGCL", "SimGCL"]
