"""Gather every speed benchmark's JSON under benchmarks/results/ into benchmarks/results/performance.md.

    python -m benchmarks.performance          # gather what is there
    python -m benchmarks.performance --run    # first re-run every benchmark script here, one after another

Each benchmark writes ``results/<name>.json`` (+ ``<name>.md``) with its machine; this page puts them side
by side: the headline numbers (ratios, throughputs, peak memory) pulled from each JSON, when and where each
ran (so a reader sees whether they ran in one session on one machine), and each benchmark's own table.
Accuracy grids (``results/<dataset>/``) are not speed benchmarks and are left out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SKIP_SCRIPTS = {"__init__.py", "common.py", "performance.py"}
# the arguments a script's committed results were produced with, where they are not its defaults
SCRIPT_ARGS = {
    "sampler_speed": ["--text", "--text_fields", "keywords"],  # the text samplers too (toys: keywords only)
}
HEADLINE_WORDS = ("ratio", "_over_", "per_s", "speedup", "peak", "rss", "mib", "throughput", "tok_s", "req_s")


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.c": leaf}`` of a JSON object (lists of numbers stay whole)."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: obj}


def headline(payload: dict[str, Any]) -> dict[str, float]:
    """Numeric leaves whose key names a ratio, a rate or a memory peak (the machine block left out)."""
    found = {}
    for key, value in flatten(payload).items():
        if key.startswith("machine") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if any(word in key.lower() for word in HEADLINE_WORDS):
            found[key] = value
    return found


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def gather(results: Path = RESULTS, rerun: bool | list[str] = False) -> str:
    """The page; ``rerun``: True when every script re-ran first, or the names of those that did."""
    files = sorted(p for p in results.glob("*.json") if p.stem != "performance")
    lines = [
        "# Performance",
        "",
        "Every speed benchmark under `benchmarks/results/`, side by side. Ratios compare contenders "
        "measured in the same run (interleaved), never timings from different runs. Gathered by "
        "`python -m benchmarks.performance`" + _rerun_note(rerun),
        "",
        "## Where and when each ran",
        "",
        "| benchmark | date (UTC) | machine | CPUs | torch threads | load average at start |",
        "|---|---|---|---|---|---|",
    ]
    sections: list[str] = []
    for path in files:
        try:
            payload = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            lines.append(f"| {path.stem} | unreadable JSON ({err}) | | | | |")
            continue
        payload = payload if isinstance(payload, dict) else {}
        # a benchmark that samples the machine before and after its run records both; the start is shown
        machine = payload.get("machine") or payload.get("machine_before") or {}
        load = machine.get("load_average")
        load_text = ", ".join(f"{x:.2f}" for x in load) if isinstance(load, list) else "-"
        lines.append(
            f"| {path.stem} | {machine.get('date', '-')} | {machine.get('platform', '-')} | "
            f"{machine.get('cpu_count', '-')} | {machine.get('torch_threads', '-')} | {load_text} |"
        )
        section = [f"## {path.stem}", ""]
        if isinstance(payload, dict) and payload.get("command"):
            section += [f"Command: `{payload['command']}`", ""]
        numbers = headline(payload) if isinstance(payload, dict) else {}
        if numbers:
            section += ["| headline number | value |", "|---|---|"]
            section += [f"| `{key}` | {_number(value)} |" for key, value in numbers.items()]
            section.append("")
        own = path.with_suffix(".md")
        if own.is_file():
            body = own.read_text().strip().splitlines()
            if body and body[0].startswith("# "):
                body = body[1:]
            section += [
                "<details><summary>the benchmark's own page</summary>",
                "",
                *body,
                "",
                "</details>",
                "",
            ]
        sections.append("\n".join(section))
    if not files:
        lines.append("| (none yet) | | | | | |")
    return "\n".join(lines) + "\n\n" + "\n".join(sections)


def _rerun_note(rerun: bool | list[str]) -> str:
    if isinstance(rerun, list):
        return " right after re-running " + ", ".join(rerun) + " in one sweep (the others are older results)."
    return " right after re-running every benchmark." if rerun else "."


def run_all(scripts: list[Path]) -> list[dict[str, Any]]:
    """Run each benchmark script (its defaults, or ``SCRIPT_ARGS``), one after another (one session, one
    machine)."""
    log = []
    for script in scripts:
        print(f"[performance] {script.name} ...", flush=True)
        start = time.perf_counter()
        module = f"benchmarks.{script.stem}"  # as a module: the scripts import benchmarks.common
        command = [sys.executable, "-m", module, *SCRIPT_ARGS.get(script.stem, [])]
        proc = subprocess.run(command, cwd=HERE.parent, check=False)
        log.append(
            {"script": script.name, "returncode": proc.returncode, "seconds": time.perf_counter() - start}
        )
        print(f"[performance] {script.name}: rc={proc.returncode} in {log[-1]['seconds']:.0f} s", flush=True)
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="re-run every benchmark script first")
    parser.add_argument("--only", default=None, help="comma-separated script names to re-run (with --run)")
    args = parser.parse_args(argv)
    from recbole_hnlm.io import atomic_write_text

    failed = []
    if args.run:
        scripts = sorted(p for p in HERE.glob("*.py") if p.name not in SKIP_SCRIPTS)
        if args.only:
            wanted = {n if n.endswith(".py") else f"{n}.py" for n in args.only.split(",")}
            scripts = [p for p in scripts if p.name in wanted]
        failed = [r["script"] for r in run_all(scripts) if r["returncode"] != 0]
    rerun = [p.stem for p in scripts] if args.run and args.only else args.run
    page = gather(rerun=rerun)
    atomic_write_text(RESULTS / "performance.md", page)
    print(f"wrote {RESULTS / 'performance.md'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
