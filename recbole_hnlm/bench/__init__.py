"""Benchmark harness (``recbole-hnlm bench``), paired significance tests, group analyses and plots.

The installed library code; the repository's top-level ``benchmarks/`` folder holds the scripts that run it
(and other measurements) and their committed results."""

from recbole_hnlm.bench.significance import PairedTest, paired_test

__all__ = ["PairedTest", "paired_test"]
