"""Tiny random Hugging Face models built in code (no weights on disk) for the HNLMRec embedder tests."""

from __future__ import annotations

from pathlib import Path

import torch

_TEXT = (
    "action comedy drama horror romance thriller documentary animation musical western war crime "
    "space robots love family kids adventure mystery fantasy science fiction history music sport "
    "user likes enjoys dislikes prefers item movie film title year genre profile old new classic"
)
WORDS = tuple(_TEXT.split(" "))


def corpus() -> list[str]:
    return [" ".join(WORDS[(k * 7 + j) % len(WORDS)] for j in range(12)) for k in range(200)]


def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def save_tiny(folder: Path, kind: str = "causal", seed: int = 0) -> Path:
    """A tiny Llama (``causal``) or BERT (``encoder``) with its tokenizer, saved as a HF folder."""
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = tokenizer()
    if kind == "causal":
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(config)
    else:
        config = BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=256,
            pad_token_id=tok.pad_token_id,
        )
        model = BertModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
