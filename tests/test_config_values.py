"""Every default of ``properties/overall.yaml`` is written there once: Python reads it (``default_of``,
``config_value``, ``setting``) and never repeats it; the scan below fails on any copy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recbole_hnlm
from recbole_hnlm.config_values import (
    config_value,
    default_of,
    overall_keys,
    setting,
)

PACKAGE = Path(recbole_hnlm.__file__).resolve().parent


def yaml_defaults() -> dict[str, object]:
    return {key: default_of(key) for key in overall_keys()}


def test_default_of_reads_the_yaml_and_refuses_unknown_keys():
    assert default_of("neg_sampler") == "rns" and default_of("ahns_p") == -2
    assert default_of("semantic_negatives") is None
    hidden = default_of("adapter_hidden_sizes")
    hidden.append(1)  # a caller's copy: the next reader still gets the yaml's list
    assert default_of("adapter_hidden_sizes") == [64]
    with pytest.raises(KeyError, match=r"'no_such_key' has no default in overall\.yaml"):
        default_of("no_such_key")


def test_config_value_reads_the_yaml_default_of_a_key_the_config_lacks():
    # a missing key reads its default; a key set to None stays None (~ means "all" for guarddns_dims)
    assert config_value({}, "guarddns_dims") == 64
    assert config_value({"guarddns_dims": None}, "guarddns_dims") is None
    assert config_value({}, "not_a_plugin_key") is None
    assert config_value(None, "dnsmn_n") == 2
    # an explicit fallback keeps its meaning: missing or None -> the fallback
    assert config_value({"dnsmn_n": None}, "dnsmn_n", 5) == 5 and config_value({}, "dnsmn_n", None) is None
    # setting(): None means "unset" too
    assert setting({"dnsmn_n": None}, "dnsmn_n") == 2 and setting({"dnsmn_n": 4}, "dnsmn_n") == 4


def test_the_yaml_defaults_are_the_built_config_values():
    """``default_of`` reads overall.yaml as the config does (RecBole's yaml loader): same values and types.

    The internal layer, before RecBole normalises a few keys (``eval_args``' mode becomes per-phase)."""
    from recbole_hnlm.config import make_config

    config = make_config("HNLMBPR", "no-dataset-yaml")  # no dataset yaml layered over overall.yaml
    internal = config.internal_config_dict
    for key in sorted(overall_keys()):
        value = default_of(key)
        assert internal[key] == value and type(internal[key]) is type(value), key


# --- the scan: no Python source writes a default of an overall.yaml key again ---


def _is_default_of(node: ast.AST, key: str) -> bool:
    """``default_of("<key>")``: reading the yaml, not copying it."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "default_of"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == key
    )


def _is_none(node: ast.AST | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


_NOT_LITERAL = object()


def _literal(node: ast.AST | None) -> object:
    try:
        return ast.literal_eval(node) if node is not None else _NOT_LITERAL
    except ValueError:
        return _NOT_LITERAL


def _copies(node: ast.AST | None, key: str, defaults: dict[str, object]) -> bool:
    """``node`` writes the yaml's default of ``key`` again: a literal equal to it (``""`` as a placeholder
    of another meaning, or a name such as the bench's own ``METRICS``, is not a copy)."""
    value = _literal(node)
    return value is not _NOT_LITERAL and value is not None and value == defaults[key]


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _argparse_dest(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "dest":
            return _string(keyword.value)
    flags = [_string(arg) for arg in call.args]
    long = [f for f in flags if f and f.startswith("--")]
    return long[0][2:].replace("-", "_") if long else None


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _call_copies(call: ast.Call, defaults: dict[str, object]) -> list[tuple[int, str]]:
    name = _call_name(call)
    key = _string(call.args[1]) if name == "config_value" and len(call.args) > 1 else None
    if key in defaults:
        fallback = call.args[2] if len(call.args) > 2 else _keyword(call, "default")
        if not _is_none(fallback) and not _is_default_of(fallback, key):
            return [(call.lineno, f"config_value({key!r}, <fallback>)")]
    key = _string(call.args[0]) if name == "get" and len(call.args) == 2 else None
    if key in defaults and _copies(call.args[1], key, defaults):
        return [(call.lineno, f"get({key!r}, <its yaml default>)")]
    key = _argparse_dest(call) if name == "add_argument" else None
    if key in defaults and _copies(_keyword(call, "default"), key, defaults):
        return [(call.lineno, f"add_argument default of {key!r}")]
    return []


def _field_copies(cls: ast.ClassDef, defaults: dict[str, object]) -> list[tuple[int, str]]:
    fields = [s for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
    return [
        (s.lineno, f"class attribute {s.target.id!r}")
        for s in fields
        if s.target.id in defaults and _copies(s.value, s.target.id, defaults)
    ]


def _parameter_copies(function: ast.FunctionDef | ast.AsyncFunctionDef, defaults: dict[str, object]) -> list:
    args = function.args
    positional = args.posonlyargs + args.args
    pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    return [
        (default.lineno, f"parameter {arg.arg!r} of {function.name}()")
        for arg, default in pairs
        if arg.arg in defaults and _copies(default, arg.arg, defaults)
    ]


def _read_key(node: ast.AST) -> str | None:
    """The key that ``config["<key>"]`` or ``config_value(config, "<key>")`` reads, else None."""
    if isinstance(node, ast.Subscript):
        return _string(node.slice)
    if isinstance(node, ast.Call) and _call_name(node) == "config_value" and len(node.args) > 1:
        return _string(node.args[1])
    return None


def _or_copies(node: ast.BoolOp, defaults: dict[str, object]) -> list[tuple[int, str]]:
    if not isinstance(node.op, ast.Or) or len(node.values) != 2:
        return []
    key = _read_key(node.values[0])
    if key in defaults and _copies(node.values[1], key, defaults):
        return [(node.lineno, f"{key!r} or <its yaml default>")]
    return []


def copies_of_yaml_defaults(tree: ast.AST, defaults: dict[str, object]) -> list[str]:
    """``line: what`` for every place in ``tree`` that writes a default of an overall.yaml key itself:

    * ``config_value(config, "<key>", <fallback>)`` with any fallback but None (a copy, or worse a
      different default);
    * ``<mapping>.get("<key>", <the yaml's default>)``;
    * a class attribute (a dataclass field) or a function parameter named after a key whose default is the
      yaml's, written out instead of ``default_of("<key>")``;
    * ``add_argument(...)`` whose destination is a key, with the yaml's default (unset flags must read
      the config, which holds the yaml's default);
    * ``config["<key>"] or <the yaml's default>``.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found += _call_copies(node, defaults)
        elif isinstance(node, ast.ClassDef):
            found += _field_copies(node, defaults)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += _parameter_copies(node, defaults)
        elif isinstance(node, ast.BoolOp):
            found += _or_copies(node, defaults)
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_the_scan_finds_each_kind_of_copy():
    source = """
config_value(config, "dnsmn_n", 2)
config.get("dens_gamma", 0.3)
parser.add_argument("--llm_timeout", type=float, default=300.0)
parser.add_argument("--timeout", dest="llm_timeout", default=300.0)
class Settings:
    llm_retries: int = 4
    llm_seed: int = default_of("llm_seed")
def f(semantic_alpha=0.1, *, kd_weight=default_of("kd_weight")): ...
config_value(config, "dnsmn_n", 7)
config_value(config, "dnsmn_n")
config_value(config, "dnsmn_n", default_of("dnsmn_n"))
parser.add_argument("--k", default=3)
result.get("metrics", {})
class Job:
    output_dir: str = ""
mode = config["semantic_loss"] or "bpr"
sizes = config["adapter_hidden_sizes"] or []
"""
    found = copies_of_yaml_defaults(ast.parse(source), yaml_defaults())
    assert [line.split(":")[0] for line in found] == ["2", "3", "4", "5", "7", "9", "10", "17"], found


def test_no_python_source_repeats_a_default_of_overall_yaml():
    defaults = yaml_defaults()
    copies = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found = copies_of_yaml_defaults(ast.parse(path.read_text(encoding="utf-8")), defaults)
        if found:
            copies[str(path.relative_to(PACKAGE))] = found
    assert not copies, f"defaults of properties/overall.yaml written again in Python: {copies}"
