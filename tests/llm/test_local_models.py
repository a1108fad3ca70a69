"""Real embedded models: SmolLM2 behind a real llama.cpp server, SmolLM2 in transformers, MiniLM."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from recbole_hnlm.data.text import dataset_dir, load_item_text
from recbole_hnlm.llm.backends import GenerationParams, OpenAIChat, TransformersChat, usable_cpus
from recbole_hnlm.llm.concurrency import bounded_map
from recbole_hnlm.llm.parsing import PROFILE_TASK, generate_structured
from recbole_hnlm.llm.prompts import ItemRecord, PromptBudget, item_profile_messages


def _ml1m_items(shared_data, tokens):
    texts = load_item_text(
        dataset_dir(shared_data, "ml-1m"), "ml-1m", ["movie_title", "release_year", "genre"]
    )
    return [ItemRecord(t, texts[t]) for t in tokens]


def test_llamacpp_server_profiles_real_items(llama_backend, shared_data):
    """Schema-constrained decoding through the server's response_format gives parseable profiles."""
    assert llama_backend.base_url.startswith("http://127.0.0.1:")
    llama_backend.check()
    items = _ml1m_items(shared_data, ["260"])
    # the stage's schema with tighter length caps, so the grammar closes the object within max_tokens
    short = {k: {"type": "string", "maxLength": 120} for k in ("summarization", "reasoning")}
    task = replace(PROFILE_TASK, schema={**PROFILE_TASK.schema, "properties": short})
    params = GenerationParams(max_tokens=120)

    def profile(item):
        return generate_structured(
            llama_backend, item_profile_messages(item, PromptBudget(), "movie"), task, params
        )

    outcomes = [o for _, o in bounded_map(profile, items, max_workers=2)]
    for outcome in outcomes:
        assert outcome.status in ("ok", "repaired"), outcome.errors
        assert outcome.value["summarization"].strip() and outcome.completion_tokens > 0
    assert llama_backend.client.stats.failures == 0


def test_llamacpp_answers_plain_openai_requests(llama_backend):
    client = OpenAIChat(llama_backend.base_url, "whatever", api_key_env=None)
    out = client.chat([{"role": "user", "content": "Say hello."}], params=GenerationParams(max_tokens=8))
    assert out.text.strip() and out.completion_tokens <= 8 and out.finish_reason in ("stop", "length")


def test_minilm_embeds(minilm):
    vectors = minilm.embed(["space adventure film", "science-fiction movie", "banana bread recipe"])
    assert vectors.shape == (3, 384) and minilm.dim == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def _tiny_lm():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["a user who likes movies and games", '{"summarization": "x", "reasoning": "y"}'] * 20
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    tok.chat_template = (
        "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<s>assistant:{% endif %}"
    )
    import torch

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return LlamaForCausalLM(cfg).eval(), tok


def test_transformers_backend_batches_concurrent_calls():
    model, tok = _tiny_lm()
    backend = TransformersChat(model=model, tokenizer=tok, max_concurrency=4, gather_seconds=0.2)
    calls = []
    original = backend._generate
    backend._generate = lambda convs, params, prefix: (
        calls.append(len(convs)) or original(convs, params, prefix)
    )
    params = GenerationParams(max_tokens=6)
    prompts = [[{"role": "user", "content": "a user who likes " + "movies " * k}] for k in range(4)]
    results = [
        r for _, r in bounded_map(lambda m: backend.chat(m, params=params, schema={}), prompts, max_workers=4)
    ]
    backend.close()
    assert sum(calls) == 4 and max(calls) > 1  # gathered into batches
    assert all(r.text.startswith("{") and 0 < r.completion_tokens <= 6 for r in results)


@pytest.mark.slow
def test_transformers_smollm2_generates_profile(shared_data):
    backend = TransformersChat(max_concurrency=2)
    item = _ml1m_items(shared_data, ["1"])[0]
    outcome = generate_structured(
        backend,
        item_profile_messages(item, PromptBudget(), "movie"),
        PROFILE_TASK,
        GenerationParams(max_tokens=120),
    )
    backend.close()
    assert outcome.status in ("ok", "repaired", "fallback")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_usable_cpus_follows_cpu_affinity():
    """A process pinned to one CPU (``taskset -c N``) may use 1 CPU: LlamaCppChat's default thread count."""
    code = (
        "import os\n"
        "from recbole_hnlm.llm.backends import usable_cpus\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "print(usable_cpus(), os.cpu_count())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    pinned, total = map(int, out.stdout.split())
    assert pinned == 1
    assert total == os.cpu_count()
    assert usable_cpus() == len(os.sched_getaffinity(0))
