"""LLM stages over a Ray cluster: one chat backend or embedder (one model) per Ray actor.

The pool is a drop-in :class:`~recbole_hnlm.llm.backends.ChatBackend` / :class:`Embedder`, so the stages
run unchanged and keep their single-machine guarantees:

* the request cache is read and written only by the driver (the stage's own ``run_requests``), so
  caching, resume after a kill and "nothing lost, nothing duplicated" are exactly those of one machine;
* ``name`` and ``model`` are the wrapped backend's, so cache keys, and therefore cached answers, are shared
  between single-process and Ray runs (a run can be resumed with or without Ray);
* a call that fails in an actor surfaces as the backend's own error (``LLMServerError``), and an actor
  that dies turns into ``LLMServerError`` too: the stage counts the request as failed, does not cache
  it, and a rerun sends it again.

A backend is built inside each actor by ``factory()`` (a picklable zero-argument callable, e.g.
``functools.partial(make_backend, "openai", base_url=...)`` or ``LLMSettings(...).backend``). Actors get
``num_gpus`` GPUs each when asked (Ray then sets ``CUDA_VISIBLE_DEVICES`` in the actor; the factory must
put its model on ``cuda``); requests go to the actor with the fewest calls in flight, at most
``concurrency`` at a time per actor (default: the backend's own ``max_concurrency``).

Command line (``--ray-actors N [--ray-address A] [--ray-gpus-per-actor G]``): :func:`add_ray_arguments`,
:func:`chat_backend_from_args`, :func:`embedder_from_args`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recbole_hnlm.llm.backends import ChatBackend, ChatResult, GenerationParams, Messages
from recbole_hnlm.llm.concurrency import LLMServerError
from recbole_hnlm.llm.embedders import Embedder

Factory = Callable[[], Any]
_RAY_LOCK = threading.Lock()
_RAY_OWNER = {"started": False, "pools": 0}


class _ModelActor:
    """Holds one backend or embedder; Ray runs up to ``max_concurrency`` of its calls on threads."""

    def __init__(self, factory: Factory, threads: int) -> None:
        import recbole_hnlm  # noqa: F401  (compat shims in the worker)

        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        self.model = factory()
        self.calls = 0
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        return {
            "name": self.model.name,
            "model": self.model.model,
            "max_concurrency": int(getattr(self.model, "max_concurrency", 1)),
            "pid": os.getpid(),
        }

    def chat(self, messages: Messages, params: GenerationParams, schema: dict[str, Any] | None) -> ChatResult:
        with self._lock:
            self.calls += 1
        return self.model.chat(messages, params=params, schema=schema)

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.calls += 1
        return self.model.embed(texts)

    def check(self) -> None:
        check = getattr(self.model, "check", None)
        if check is not None:
            check()

    def stats(self) -> dict[str, int]:
        return {"pid": os.getpid(), "calls": self.calls}

    def close(self) -> None:
        close = getattr(self.model, "close", None)
        if close is not None:
            close()


def _unwrap(err: BaseException, where: str) -> BaseException:
    """The error an actor raised (Ray wraps it), or ``LLMServerError`` when the actor itself is gone."""
    import ray.exceptions as rex

    if isinstance(err, rex.RayTaskError):
        cause = getattr(err, "cause", None)
        if isinstance(cause, BaseException):
            return cause
        return LLMServerError(f"{where}: {err}")
    if isinstance(err, (rex.RayActorError, rex.WorkerCrashedError, rex.ObjectLostError)):
        return LLMServerError(f"{where}: the Ray actor died ({type(err).__name__}: {err})")
    return err


class _ActorPool:
    """``num_actors`` actors built by ``factory``; :meth:`call` picks the least busy one."""

    def __init__(
        self,
        factory: Factory,
        num_actors: int,
        *,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        concurrency: int | None = None,
        address: str | None = None,
    ) -> None:
        import ray

        from recbole_hnlm.ray_compat import init_ray

        if num_actors < 1:
            raise ValueError(f"num_actors must be >= 1, got {num_actors}")
        with _RAY_LOCK:
            if init_ray(address):
                _RAY_OWNER["started"] = True
            _RAY_OWNER["pools"] += 1
        self._open = True
        self._ray = ray
        remote = ray.remote(_ModelActor).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_concurrency=max(1, concurrency or 64)
        )
        threads = max(1, int(num_cpus)) if num_cpus else 0
        self.actors = [remote.remote(factory, threads) for _ in range(num_actors)]
        try:
            self.infos = self.get([a.info.remote() for a in self.actors], "starting the actors")
        except BaseException:
            self.shutdown()
            raise
        first = self.infos[0]
        if any((i["name"], i["model"]) != (first["name"], first["model"]) for i in self.infos):
            self.shutdown()
            raise ValueError(
                f"the actors built different models: {[(i['name'], i['model']) for i in self.infos]}"
            )
        self.name, self.model = first["name"], first["model"]
        self.per_actor = concurrency or first["max_concurrency"]
        self._busy = [0] * num_actors
        self._lock = threading.Lock()

    def get(self, refs: Any, where: str) -> Any:
        try:
            return self._ray.get(refs)
        except Exception as err:
            raise _unwrap(err, where) from err

    def call(self, method: str, *args: Any) -> Any:
        with self._lock:
            index = min(range(len(self.actors)), key=self._busy.__getitem__)
            self._busy[index] += 1
        try:
            ref = getattr(self.actors[index], method).remote(*args)
            return self.get(ref, f"Ray actor {index} ({self.name} {self.model})")
        finally:
            with self._lock:
                self._busy[index] -= 1

    def broadcast(self, method: str) -> list[Any]:
        return self.get([getattr(a, method).remote() for a in self.actors], f"Ray actors: {method}")

    def shutdown(self) -> None:
        for actor in getattr(self, "actors", []):
            with contextlib.suppress(Exception):  # an actor that is already gone has nothing to close
                self._ray.get(actor.close.remote(), timeout=30)
            self._ray.kill(actor)
        self.actors = []
        if not getattr(self, "_open", False):
            return
        self._open = False
        with _RAY_LOCK:  # the Ray this module started goes down with the last pool
            _RAY_OWNER["pools"] -= 1
            if _RAY_OWNER["pools"] == 0 and _RAY_OWNER["started"]:
                self._ray.shutdown()
                _RAY_OWNER["started"] = False


class _PooledModel:
    """What :class:`RayChatBackend` and :class:`RayEmbedder` share: an :class:`_ActorPool` of ``factory``
    models, the wrapped model's ``name`` and ``model`` (so cache keys match a single-process run), per-actor
    stats and ``close``.
    """

    def __init__(
        self,
        factory: Factory,
        num_actors: int,
        *,
        num_cpus_per_actor: float,
        num_gpus_per_actor: float,
        concurrency_per_actor: int | None,
        address: str | None,
    ) -> None:
        self.pool = _ActorPool(
            factory,
            num_actors,
            num_cpus=num_cpus_per_actor,
            num_gpus=num_gpus_per_actor,
            concurrency=concurrency_per_actor,
            address=address,
        )
        self.name: str = self.pool.name
        self.model: str = self.pool.model

    def actor_stats(self) -> list[dict[str, int]]:
        """``{"pid", "calls"}`` of every actor (calls = the calls it served; for chat, repairs included)."""
        return self.pool.broadcast("stats")

    def close(self) -> None:
        self.pool.shutdown()


class RayChatBackend(_PooledModel):
    """A :class:`ChatBackend` whose ``chat`` calls run on ``num_actors`` Ray actors (one model each).

    ``max_concurrency`` is the sum over the actors, so the stage keeps every actor busy.
    """

    def __init__(
        self,
        factory: Factory,
        num_actors: int = 2,
        *,
        num_cpus_per_actor: float = 1.0,
        num_gpus_per_actor: float = 0.0,
        concurrency_per_actor: int | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(
            factory,
            num_actors,
            num_cpus_per_actor=num_cpus_per_actor,
            num_gpus_per_actor=num_gpus_per_actor,
            concurrency_per_actor=concurrency_per_actor,
            address=address,
        )
        self.max_concurrency = self.pool.per_actor * num_actors

    def __repr__(self) -> str:
        return f"RayChatBackend({self.name}/{self.model} x {len(self.pool.actors)} actors)"

    def chat(
        self, messages: Messages, *, params: GenerationParams, schema: dict[str, Any] | None = None
    ) -> ChatResult:
        return self.pool.call("chat", messages, params, schema)

    def check(self) -> None:
        self.pool.broadcast("check")


class RayEmbedder(_PooledModel):
    """An :class:`Embedder` that splits ``embed(texts)`` into chunks over ``num_actors`` Ray actors.

    Rows come back in input order; a chunk holds ``chunk_size`` texts (default: an even share per actor,
    so each actor still batches on its own).
    """

    def __init__(
        self,
        factory: Factory,
        num_actors: int = 2,
        *,
        num_cpus_per_actor: float = 1.0,
        num_gpus_per_actor: float = 0.0,
        chunk_size: int | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(
            factory,
            num_actors,
            num_cpus_per_actor=num_cpus_per_actor,
            num_gpus_per_actor=num_gpus_per_actor,
            concurrency_per_actor=1,
            address=address,
        )
        self.chunk_size = chunk_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        actors = len(self.pool.actors)
        size = self.chunk_size or max(1, -(-len(texts) // actors))
        chunks = [texts[k : k + size] for k in range(0, len(texts), size)]
        if not chunks:
            return self.pool.call("embed", [])
        from recbole_hnlm.llm.concurrency import bounded_map

        parts: dict[int, np.ndarray] = {}
        for start, result in bounded_map(
            lambda k: self.pool.call("embed", chunks[k]), range(len(chunks)), max_workers=actors
        ):
            if isinstance(result, BaseException):
                raise result
            parts[start] = np.asarray(result)
        dims = {p.shape[1] for p in parts.values()}
        if len(dims) != 1:
            raise ValueError(f"{self.name} {self.model}: actors returned different dimensions {sorted(dims)}")
        return np.concatenate([parts[k] for k in range(len(chunks))], axis=0)


# --------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray (spread the LLM calls over actors, one model per actor)")
    group.add_argument(
        "--ray-actors", "--ray_actors", dest="ray_actors", type=int, default=0, help="0: no Ray"
    )
    group.add_argument(
        "--ray-address", "--ray_address", dest="ray_address", default=None, help="running cluster"
    )
    group.add_argument(
        "--ray-gpus-per-actor", "--ray_gpus_per_actor", dest="ray_gpus_per_actor", type=float, default=0.0
    )
    group.add_argument(
        "--ray-cpus-per-actor", "--ray_cpus_per_actor", dest="ray_cpus_per_actor", type=float, default=1.0
    )


def _pooled_from_args(
    cls: type[RayChatBackend] | type[RayEmbedder], factory: Factory, args: argparse.Namespace
) -> Any:
    """``factory()`` when ``--ray-actors`` is 0, else ``cls`` over that many actors (``--ray-*`` options)."""
    actors = int(getattr(args, "ray_actors", 0) or 0)
    if actors <= 0:
        return factory()
    return cls(
        factory,
        actors,
        num_cpus_per_actor=getattr(args, "ray_cpus_per_actor", 1.0),
        num_gpus_per_actor=getattr(args, "ray_gpus_per_actor", 0.0),
        address=getattr(args, "ray_address", None),
    )


def chat_backend_from_args(factory: Factory, args: argparse.Namespace) -> ChatBackend:
    """``factory()`` here, or a :class:`RayChatBackend` of ``--ray-actors`` copies of it."""
    return _pooled_from_args(RayChatBackend, factory, args)


def embedder_from_args(factory: Factory, args: argparse.Namespace) -> Embedder:
    return _pooled_from_args(RayEmbedder, factory, args)
