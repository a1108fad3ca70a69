"""Fingerprints that tie an artefact (a negative store, a profile file) to the dataset it was built for."""

from __future__ import annotations

import hashlib
from typing import Any


def _hash_tokens(tokens: Any) -> str:
    digest = hashlib.sha256()
    for token in tokens:
        digest.update(str(token).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def dataset_fingerprint(dataset: Any) -> str:
    """Hash of a RecBole dataset's name and its user/item vocabularies (internal id order included).

    Two runs that load the same atomic files with the same filters agree; a store or embedding matrix
    built for another dataset, or for the same files filtered differently, does not.
    """
    uid, iid = dataset.uid_field, dataset.iid_field
    digest = hashlib.sha256()
    digest.update(str(dataset.dataset_name).encode("utf-8"))
    digest.update(_hash_tokens(dataset.field2id_token[uid]).encode())
    digest.update(_hash_tokens(dataset.field2id_token[iid]).encode())
    return digest.hexdigest()[:16]
