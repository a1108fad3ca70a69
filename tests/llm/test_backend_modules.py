"""The chat backends live by concern (chat, http_chat, local_chat); backends keeps the registry and every
name it held, so old imports keep working."""

from __future__ import annotations

from recbole_hnlm.config_values import default_of
from recbole_hnlm.llm import backends, chat, http_chat, local_chat
from recbole_hnlm.llm.embedders import EMBEDDERS

HOMES = {
    chat: ("ChatBackend", "ChatResult", "GenerationParams", "Messages"),
    http_chat: ("OllamaChat", "OpenAIChat"),
    local_chat: ("SMOLLM2_GGUF", "LlamaCppChat", "TransformersChat", "smollm2_gguf_path", "usable_cpus"),
}


def test_backends_reexports_every_moved_name():
    for module, names in HOMES.items():
        for name in names:
            assert name in backends.__all__, name
            assert getattr(backends, name) is getattr(module, name), name


def test_the_registry_names_each_backend_class():
    expected = {
        "openai": http_chat.OpenAIChat,
        "ollama": http_chat.OllamaChat,
        "llamacpp": local_chat.LlamaCppChat,
        "transformers": local_chat.TransformersChat,
    }
    assert dict(backends.BACKENDS) == expected
    assert default_of("llm_backend") in backends.BACKENDS and default_of("embedder") in EMBEDDERS
    assert issubclass(local_chat.LlamaCppChat, http_chat.OpenAIChat)
