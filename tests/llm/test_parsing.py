from __future__ import annotations

import pytest

from recbole_hnlm.llm.backends import ChatResult, GenerationParams
from recbole_hnlm.llm.parsing import (
    NEGATIVE_TASK,
    PROFILE_TASK,
    JsonExtractionError,
    extract_json,
    generate_structured,
    is_none_answer,
    is_template_echo,
    negatives_task,
    profile_task,
    repair_message,
    validate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": "x", "b": "y"}', {"a": "x", "b": "y"}),
        ('```json\n{"a": "x"}\n```\nHope this helps!', {"a": "x"}),
        (
            'Sure! Here it is: {"a": "brace } in string", "b": 1} and more text {',
            {"a": "brace } in string", "b": 1},
        ),
        ("{'a': 'single', 'b': None}", {"a": "single", "b": None}),
        ('{"a": "x", "b": ["p", "q",],}', {"a": "x", "b": ["p", "q"]}),
        ('{"a": true, "b": null}', {"a": True, "b": None}),
        ('noise {bad} then {"a": "ok"}', {"a": "ok"}),
        ('{"outer": {"inner": "v"}}', {"outer": {"inner": "v"}}),
    ],
)
def test_extract_json_exact(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["no json here", '{"a": "never closed', "[1, 2, 3]", ""])
def test_extract_json_errors(text):
    with pytest.raises(JsonExtractionError):
        extract_json(text)


def test_validate_exact_messages():
    assert validate({"summarization": "s", "reasoning": "r"}, PROFILE_TASK.schema) == []
    assert validate({"summarization": 3}, PROFILE_TASK.schema) == [
        "$: missing key 'reasoning'",
        "$.summarization: expected string, got int",
    ]
    schema = negatives_task(2, reasoning_chars=5).schema
    assert validate({"hard_negative_items": ["a", "b"], "reasoning": "too long"}, schema) == [
        "$.reasoning: longer than 5 characters"
    ]
    assert validate({"hard_negative_items": ["a"], "reasoning": ""}, schema) == [
        "$.hard_negative_items: fewer than 2 items"
    ]
    assert NEGATIVE_TASK.errors({"hard_negative_item": " ".join(["w"] * 21), "reasoning": "r"}) == [
        "hard negative name has more than 20 words"
    ]


def test_none_answers():
    assert (
        is_none_answer("None")
        and is_none_answer(" none. ")
        and is_none_answer(None)
        and is_none_answer("N/A")
    )
    assert not is_none_answer("Nonesuch Toy")
    assert is_template_echo(" <name, at most 20 words> ") and not is_template_echo("<3 Hearts")


class Scripted:
    name, model, max_concurrency = "scripted", "m", 1

    def __init__(self, answers):
        self.answers = list(answers)
        self.seen = []

    def chat(self, messages, *, params, schema=None):
        self.seen.append(messages)
        return ChatResult(self.answers.pop(0), 3, 2)

    def check(self):
        pass

    def close(self):
        pass


def test_generate_ok_repaired_fallback_failed():
    params = GenerationParams()
    ok = generate_structured(Scripted(['{"summarization": "s", "reasoning": "r"}']), [], PROFILE_TASK, params)
    assert (ok.status, ok.value, ok.attempts, ok.prompt_tokens) == (
        "ok",
        {"summarization": "s", "reasoning": "r"},
        1,
        3,
    )

    backend = Scripted(["not json at all", '{"summarization": "s2", "reasoning": "r2", "extra": 1}'])
    repaired = generate_structured(backend, [{"role": "user", "content": "q"}], PROFILE_TASK, params)
    assert repaired.status == "repaired" and repaired.value == {"summarization": "s2", "reasoning": "r2"}
    assert repaired.attempts == 2 and repaired.completion_tokens == 4
    second = backend.seen[1]  # the repair turn carries the bad answer and the problem
    assert second[1] == {"role": "assistant", "content": "not json at all"}
    assert "no complete JSON object" in second[2]["content"]

    prose = "This movie suits families who like animated adventures."
    fb = generate_structured(Scripted([prose, prose, prose]), [], PROFILE_TASK, params, max_repairs=2)
    assert (
        fb.status == "fallback" and fb.value == {"summarization": prose, "reasoning": ""} and fb.attempts == 3
    )

    failed = generate_structured(Scripted(["{}", "{}"]), [], NEGATIVE_TASK, params, max_repairs=1)
    assert failed.status == "failed" and failed.value is None and len(failed.errors) == 4


def test_profile_fallback_is_cut_to_the_summary_cap():
    """The prose kept by the fallback obeys the same maxLength as a schema-valid summarization."""
    prose = "A long answer that is not JSON but still describes the movie well. " * 4
    task = profile_task(summary_chars=30)
    fb = generate_structured(Scripted([prose]), [], task, GenerationParams(), max_repairs=0)
    assert fb.status == "fallback" and fb.value["summarization"] == prose[:30]
    assert task.schema["properties"]["summarization"]["maxLength"] == 30


def test_public_tasks_use_the_pipeline_default_caps():
    from recbole_hnlm.stages.common import LLMSettings

    defaults = LLMSettings()
    props = PROFILE_TASK.schema["properties"]
    assert props["summarization"]["maxLength"] == defaults.profile_summary_chars
    assert props["reasoning"]["maxLength"] == defaults.profile_reasoning_chars
    reasoning = NEGATIVE_TASK.schema["properties"]["reasoning"]["maxLength"]
    assert reasoning == defaults.negative_reasoning_chars


def test_repair_message_states_each_keys_shape():
    """The per-user task wants a list: the repair turn must not ask for string values only."""
    errors = ["$.hard_negative_items: expected array"]
    text = repair_message(negatives_task(3, reasoning_chars=50), errors)["content"]
    assert '"hard_negative_items": a list of 3 strings of at most 200 characters' in text
    assert '"reasoning": a string of at most 50 characters' in text and errors[0] in text
    profile = repair_message(profile_task(30, 20), [])["content"]
    expected = '"summarization": a string of at most 30 characters; "reasoning": a string of at most 20'
    assert expected in profile


def test_lenient_parse_keeps_json_words_inside_strings():
    """A Python-style answer gets its bare null/true/false converted, never the same words in its text."""
    text = "{'summarization': 'a null hypothesis, a true story', 'reasoning': null, 'q': 'it\\'s false'}"
    assert extract_json(text) == {
        "summarization": "a null hypothesis, a true story",
        "reasoning": None,
        "q": "it's false",
    }
