"""The two CLI stages end to end on RecBole's embedded ml-100k, against the stand-in server."""

from __future__ import annotations

import json

import pytest
from standin import StandIn

from recbole_hnlm.negatives.store import SemanticNegativeStore


def test_cli_profiles_then_negatives(tmp_path, monkeypatch):
    cli = pytest.importorskip("recbole_hnlm.cli")
    monkeypatch.chdir(tmp_path)  # RecBole writes log/ into the working directory
    with StandIn() as server:
        common = [
            "--dataset",
            "ml-100k",
            "--backend",
            "ollama",
            "--base_url",
            server.url,
            "--artifact_dir",
            str(tmp_path / "art"),
            "--no_progress",
            "--concurrency",
            "4",
        ]
        assert (
            cli.main(
                [
                    "profiles",
                    *common,
                    "--max_items",
                    "6",
                    "--max_users",
                    "3",
                    "--embed",
                    "--embedder",
                    "ollama",
                    "--embedder_base_url",
                    server.url,
                ]
            )
            == 0
        )
        root = tmp_path / "art" / "ml-100k"
        users = (root / "profiles" / "users.jsonl").read_text().splitlines()
        assert len(users) == 3 and len((root / "profiles" / "items.jsonl").read_text().splitlines()) == 6
        first_prompt = next(b for b in server.bodies if "BASIC INFORMATION" in b["messages"][-1]["content"])
        assert "movie_title" in first_prompt["messages"][-1]["content"]
        assert (
            cli.main(["negatives", *common, "--embedder", "ollama", "--embedder_base_url", server.url]) == 0
        )

    report = json.loads((root / "negatives" / "prompt.report.json").read_text())
    store = SemanticNegativeStore(root / "negatives" / "prompt")
    profiled = {json.loads(line)["token"] for line in users}
    assert set(store.user_tokens.tolist()) == profiled and len(store) == report["rows"] > 0
    assert report["skipped"]["no_user_profile"] > 0  # users without a profile get no invented rows


def test_cli_sends_no_key_unless_its_variable_is_named(tmp_path, monkeypatch):
    cli = pytest.importorskip("recbole_hnlm.cli")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient-999")
    monkeypatch.setenv("HNLM_CLI_KEY", "sk-named-123")
    with StandIn() as server:
        common = ["profiles", "--dataset", "ml-100k", "--backend", "openai", "--base_url", server.url + "/v1"]
        common += ["--llm_model", "m", "--no_progress", "--max_items", "2", "--max_users", "1"]
        assert cli.main([*common, "--artifact_dir", str(tmp_path / "a")]) == 0
        sent = len(server.headers)
        assert sent > 0 and all("Authorization" not in h for h in server.headers)
        assert (
            cli.main([*common, "--artifact_dir", str(tmp_path / "b"), "--api_key_env", "HNLM_CLI_KEY"]) == 0
        )
        assert len(server.headers) > sent
        assert all(h.get("Authorization") == "Bearer sk-named-123" for h in server.headers[sent:])
