"""Getting a validated JSON object out of an LLM answer.

:func:`extract_json` is tolerant (code fences, text around the object, single quotes, Python
literals, trailing commas); :func:`validate` checks the small JSON-schema subset the stage schemas use;
:func:`generate_structured` calls a backend, asks for a repair up to ``max_repairs`` times, and then
applies the task's fallback. Every answer ends with a status: ``ok``, ``repaired``, ``fallback`` or
``failed``, so a stage can count them instead of hiding them.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from recbole_hnlm.config_values import default_of
from recbole_hnlm.llm.backends import ChatBackend, GenerationParams, Messages

STATUSES = ("ok", "repaired", "fallback", "failed")
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


class JsonExtractionError(ValueError):
    """No JSON object could be read from an answer."""


def _balanced_object(text: str, start: int) -> str | None:
    """The ``{...}`` starting at ``start``, honouring strings in both quote styles; None if unclosed."""
    depth, quote, escaped = 0, "", False
    for pos in range(start, len(text)):
        char = text[pos]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start : pos + 1]
    return None


# JSON's true/false/null as Python literals for ast.literal_eval, outside quoted strings only: a quoted
# string is matched (and kept) first, so "a null hypothesis" stays as written
_JSON_WORD = re.compile(r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|\b(true|false|null)\b""")
_PYTHON_WORD = {"true": "True", "false": "False", "null": "None"}


def _loads_lenient(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except json.JSONDecodeError:
        pass
    cleaned = _TRAILING_COMMA.sub(r"\1", candidate)
    try:
        return json.loads(cleaned)
    except json.JSONDecodeError:
        pass
    literal = _JSON_WORD.sub(lambda m: _PYTHON_WORD.get(m.group(1), m.group(0)), cleaned)
    try:
        return ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
        raise JsonExtractionError(f"not valid JSON: {candidate[:80]!r}") from err


def extract_json(text: str) -> dict[str, Any]:
    """Read the first JSON object in ``text``; raise :class:`JsonExtractionError` if there is none."""
    fenced = _FENCE.findall(text)
    sources = [*fenced, text] if fenced else [text]
    last_error: JsonExtractionError | None = None
    for source in sources:
        start = source.find("{")
        while start != -1:
            candidate = _balanced_object(source, start)
            if candidate is None:
                break
            try:
                value = _loads_lenient(candidate)
            except JsonExtractionError as err:
                last_error = err
            else:
                if isinstance(value, dict):
                    return value
            start = source.find("{", start + 1)
    if last_error is not None:
        raise last_error
    raise JsonExtractionError("no complete JSON object in the answer")


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "array": (list,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def validate(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Errors of ``value`` against a JSON-schema subset: type, required, properties, lengths, items."""
    errors: list[str] = []
    expected = schema.get("type")
    if expected and not isinstance(value, _TYPES[expected]):
        return [f"{where}: expected {expected}, got {type(value).__name__}"]
    if isinstance(value, dict):
        errors += [f"{where}: missing key {key!r}" for key in schema.get("required", []) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += validate(value[key], sub, f"{where}.{key}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']} characters")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        for k, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{where}[{k}]")
    return errors


@dataclass(frozen=True)
class StructuredTask:
    """What an answer must look like, and what to do when it never does.

    ``check`` adds task rules beyond the schema (e.g. a word limit); ``fallback`` maps the last raw
    answer to a value (recorded with status ``fallback``) or returns None (status ``failed``).
    """

    name: str
    schema: dict[str, Any]
    check: Callable[[dict[str, Any]], list[str]] | None = None
    fallback: Callable[[str], dict[str, Any] | None] | None = None

    def errors(self, value: dict[str, Any]) -> list[str]:
        return validate(value, self.schema) + (self.check(value) if self.check else [])

    def field_names(self) -> list[str]:
        return list(self.schema.get("properties", {}))


@dataclass
class Outcome:
    status: str
    value: dict[str, Any] | None
    raw: str
    attempts: int
    errors: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # wall time of all attempts; cached with the answer, so reruns know its cost

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def parse_answer(text: str, task: StructuredTask) -> tuple[dict[str, Any] | None, list[str]]:
    """(value, []) when ``text`` holds a valid answer, else (None, errors)."""
    try:
        value = extract_json(text)
    except JsonExtractionError as err:
        return None, [str(err)]
    errors = task.errors(value)
    return (None, errors) if errors else ({k: value[k] for k in task.field_names() if k in value}, [])


def _cap(schema: dict[str, Any]) -> str:
    return f" of at most {schema['maxLength']} characters" if "maxLength" in schema else ""


def describe_value(schema: dict[str, Any]) -> str:
    """A JSON-schema value in words for the repair prompt: "a list of 3 strings of at most 200 characters"."""
    if schema.get("type") == "array":
        low, high, items = schema.get("minItems"), schema.get("maxItems"), schema.get("items", {})
        count = f"{low} " if low is not None and low == high else ""
        return f"a list of {count}{items.get('type', 'value')}s{_cap(items)}"
    return f"a {schema.get('type', 'value')}{_cap(schema)}"


def repair_message(task: StructuredTask, errors: list[str]) -> dict[str, str]:
    """The follow-up turn after an unusable answer: what was wrong and the exact shape expected."""
    fields = "; ".join(f'"{k}": {describe_value(v)}' for k, v in task.schema.get("properties", {}).items())
    problems = "; ".join(errors[:5])
    return {
        "role": "user",
        "content": (
            f"Your previous answer could not be used ({problems}). Reply again with only one JSON object "
            f"with these keys ({fields}), and nothing else."
        ),
    }


def generate_structured(
    backend: ChatBackend,
    messages: Messages,
    task: StructuredTask,
    params: GenerationParams,
    *,
    max_repairs: int = 2,
) -> Outcome:
    """Ask, validate, repair up to ``max_repairs`` times, then fall back; transport errors propagate."""
    start = time.perf_counter()
    conversation = list(messages)
    all_errors: list[str] = []
    prompt_tokens = completion_tokens = 0
    raw = ""

    def outcome(status: str, value: dict[str, Any] | None, attempts: int) -> Outcome:
        seconds = time.perf_counter() - start
        return Outcome(status, value, raw, attempts, all_errors, prompt_tokens, completion_tokens, seconds)

    for attempt in range(max_repairs + 1):
        result = backend.chat(conversation, params=params, schema=task.schema)
        prompt_tokens += result.prompt_tokens
        completion_tokens += result.completion_tokens
        raw = result.text
        value, errors = parse_answer(raw, task)
        if value is not None:
            return outcome("ok" if attempt == 0 else "repaired", value, attempt + 1)
        all_errors.extend(f"attempt {attempt + 1}: {e}" for e in errors)
        conversation = [*conversation, {"role": "assistant", "content": raw}, repair_message(task, errors)]
    fallback = task.fallback(raw) if task.fallback else None
    return outcome("fallback" if fallback is not None else "failed", fallback, max_repairs + 1)


def _string(max_length: int | None = None) -> dict[str, Any]:
    return {"type": "string", **({"maxLength": max_length} if max_length else {})}


def _answer_object(**properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON object with exactly these keys, all required."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


# Default caps of the answers' strings, the config keys' defaults (properties/overall.yaml): a small
# model's answer stays a short, closed JSON object within max_tokens
PROFILE_SUMMARY_CHARS = default_of("profile_summary_chars")
PROFILE_REASONING_CHARS = default_of("profile_reasoning_chars")
NEGATIVE_REASONING_CHARS = default_of("negative_reasoning_chars")


def profile_schema(
    summary_chars: int = PROFILE_SUMMARY_CHARS, reasoning_chars: int = PROFILE_REASONING_CHARS
) -> dict[str, Any]:
    """Profile JSON schema. Backends that decode under the schema (llama.cpp, vLLM) keep the strings within
    ``maxLength``, so short limits give short, complete answers instead of answers cut at ``max_tokens``."""
    return _answer_object(summarization=_string(summary_chars), reasoning=_string(reasoning_chars))


PROFILE_SCHEMA: dict[str, Any] = profile_schema()

NAME_CHARS = 200  # a title fits


def negative_schema(reasoning_chars: int = NEGATIVE_REASONING_CHARS) -> dict[str, Any]:
    """Interaction mode: one named negative for one (user, item) pair."""
    return _answer_object(hard_negative_item=_string(NAME_CHARS), reasoning=_string(reasoning_chars))


NEGATIVE_SCHEMA: dict[str, Any] = negative_schema()


def negatives_schema(k: int, reasoning_chars: int = NEGATIVE_REASONING_CHARS) -> dict[str, Any]:
    """Per-user mode: ``k`` named negatives shared by the user's interactions."""
    names = {"type": "array", "items": _string(NAME_CHARS), "minItems": k, "maxItems": k}
    return _answer_object(hard_negative_items=names, reasoning=_string(reasoning_chars))


def _nonempty(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], list[str]]:
    def check(value: dict[str, Any]) -> list[str]:
        return [f"$.{k}: empty" for k in keys if isinstance(value.get(k), str) and not value[k].strip()]

    return check


def _profile_fallback(summary_chars: int) -> Callable[[str], dict[str, Any] | None]:
    """Keep a non-JSON answer's prose, cut to the summary's cap, as the summarization (status
    ``fallback``); nothing if it is empty."""

    def fallback(raw: str) -> dict[str, Any] | None:
        text = " ".join(re.sub(r"[{}\[\]`\"]", " ", raw).split())
        return {"summarization": text[:summary_chars], "reasoning": ""} if len(text) >= 20 else None

    return fallback


MAX_NEGATIVE_WORDS = 20


def _negative_check(value: dict[str, Any]) -> list[str]:
    names = value.get("hard_negative_items", [value.get("hard_negative_item")])
    errors = []
    for name in names:
        if isinstance(name, str) and not name.strip():
            errors.append("hard negative name is empty")
        elif isinstance(name, str) and len(name.split()) > MAX_NEGATIVE_WORDS:
            errors.append(f"hard negative name has more than {MAX_NEGATIVE_WORDS} words")
    return errors


def profile_task(
    summary_chars: int = PROFILE_SUMMARY_CHARS, reasoning_chars: int = PROFILE_REASONING_CHARS
) -> StructuredTask:
    schema = profile_schema(summary_chars, reasoning_chars)
    return StructuredTask("profile", schema, _nonempty(("summarization",)), _profile_fallback(summary_chars))


PROFILE_TASK = profile_task()


def negative_task(reasoning_chars: int = NEGATIVE_REASONING_CHARS) -> StructuredTask:
    return StructuredTask("hard_negative", negative_schema(reasoning_chars), _negative_check, None)


NEGATIVE_TASK = negative_task()


def negatives_task(k: int, reasoning_chars: int = NEGATIVE_REASONING_CHARS) -> StructuredTask:
    schema = negatives_schema(k, reasoning_chars)
    return StructuredTask(f"hard_negatives_{k}", schema, _negative_check, None)


def is_template_echo(name: str) -> bool:
    """True for a copy of the prompt's answer placeholder ("<name, at most 20 words>") instead of a name:
    small models echo it; as a negative it would embed the instruction, not an item."""
    name = name.strip()
    return name.startswith("<") and name.endswith(">")


def is_none_answer(name: str | None) -> bool:
    """True for the model's explicit "no suitable negative" answers ("None", "N/A", empty)."""
    return name is None or name.strip().strip(".").lower() in {"", "none", "n/a", "null", "no item"}
