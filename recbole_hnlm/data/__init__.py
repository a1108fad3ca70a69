"""Datasets: registry, raw-dump preparation, splits, item/user text, fingerprints."""
