"""Benchmark harness (``recbole-hnlm bench``), paired significance tests, group analyses and plots."""

from recbole_hnlm.bench.significance import PairedTest, paired_test

__all__ = ["PairedTest", "paired_test"]
