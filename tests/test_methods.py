"""The method catalogue: names, kinds, the config each sets, and that it is cheap to import."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_hnlm import methods
from recbole_hnlm.negatives.samplers import SAMPLERS
from recbole_hnlm.quick_start import sampler_overrides

REPO = Path(__file__).resolve().parents[1]


def test_the_catalogue_lists_every_method_by_kind():
    assert methods.names(methods.HARD) == (
        "rns",
        "dns",
        "dnsmn",
        "mixgcf",
        "dens",
        "ahns",
        "semdns",
        "guarddns",
        "aligndns",
        "hnlm",
    )
    assert methods.names(methods.HARD, aliases=False)[-1] == "aligndns"
    assert methods.names(methods.STORE) == ("hnlm-mix", "prompt")
    assert methods.names(methods.ALIGNMENT) == ("rlmrec-con", "rlmrec-gen")
    assert len(methods.names()) == 14
    with pytest.raises(ValueError, match="unknown method kind"):
        methods.names("soft")


def test_each_method_sets_its_config():
    assert methods.method("dns").config() == {"neg_sampler": "dns"}
    assert methods.method("hnlm-mix").config() == {}
    assert methods.method("rlmrec-gen").config() == {"alignment": "rlmrec-gen"}
    assert sampler_overrides("guarddns", None) == {"neg_sampler": "guarddns"}
    with pytest.raises(ValueError, match="--sampler must be one of rns, dns"):
        methods.method("bpr")


def test_hnlm_names_the_default_design_and_takes_its_kind_and_config():
    default = methods.method(methods.DEFAULT_DESIGN)
    assert methods.DEFAULT_DESIGN == "aligndns"
    alias = methods.method("hnlm")
    assert alias.stands_for == "aligndns" and alias.kind == default.kind == methods.HARD
    assert alias.config() == default.config() == {"neg_sampler": "aligndns"}
    assert "hnlm" not in SAMPLERS  # no sampler class of its own: the config names aligndns's
    # with its own pool size, a key of its own in properties/ (quick_start.design_settings applies it)
    assert alias.design == (("aligndns_candidates", "hnlm_candidates"),) and default.design == ()


def test_only_the_classic_samplers_are_baselines():
    semantic = {n for n in methods.names() if methods.method(n).semantic}
    assert semantic == {"semdns", "guarddns", "aligndns", "hnlm", "hnlm-mix", "prompt"}


def test_every_hard_method_names_its_sampler_class():
    assert list(SAMPLERS) == list(methods.names(methods.HARD, aliases=False))
    for name, cls in SAMPLERS.items():
        assert cls.name == name and methods.METHODS[name].sampler_class.endswith(f":{cls.__name__}")


def test_the_catalogue_imports_nothing_and_gives_train_its_choices(tmp_path):
    tree = ast.parse(Path(methods.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "typing"}
    done = subprocess.run(
        [sys.executable, "-m", "recbole_hnlm", "train", "--sampler", "bpr"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "invalid choice: 'bpr'" in done.stderr
    assert "'guarddns'" in done.stderr and "'rlmrec-gen'" in done.stderr
