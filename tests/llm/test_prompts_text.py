from __future__ import annotations

import json

import pytest

from recbole_hnlm.data.text import TextFieldError, dataset_dir, load_item_text, load_reviews, read_atomic
from recbole_hnlm.llm.prompts import (
    HistoryEntry,
    ItemRecord,
    PromptBudget,
    hard_negative_messages,
    item_profile_messages,
    system_prompt,
    user_profile_messages,
)


def _fixture_items(shared_data):
    """The RLMRec Yelp item prompts parsed back into (basic info, reviews)."""
    out = []
    for line in (shared_data / "fixtures" / "rlmrec-yelp" / "item_prompts.jsonl").read_text().splitlines():
        prompt = json.loads(line)["prompt"]
        info_part, feedback = prompt.split("USER FEEDBACK:", 1)
        info = json.loads(info_part.split("BASIC INFORMATION:", 1)[1])
        reviews = [r.strip().strip('"') for r in feedback.strip().strip("[]").split('"\n"') if r.strip()]
        out.append((info, reviews))
    return out


def test_item_prompt_from_real_yelp_records(shared_data):
    budget = PromptBudget(max_tokens=400, max_review_tokens=60, max_reviews=5)
    for info, reviews in _fixture_items(shared_data):
        item = ItemRecord(info["name"], {k: str(v) for k, v in info.items()}, tuple(reviews))
        messages = item_profile_messages(item, budget, item_noun="business")
        assert messages[0]["role"] == "system" and "business" in messages[0]["content"]
        assert "${" not in messages[0]["content"]
        user = messages[1]["content"]
        assert user.startswith("BASIC INFORMATION:\n") and info["name"] in user
        assert budget.tokens(user) <= 400  # the budget holds for long real reviews
        if "USER FEEDBACK" in user:
            kept = json.loads(user.split("USER FEEDBACK:\n", 1)[1])
            assert 1 <= len(kept) <= 5
            assert all(budget.tokens(r) <= 60 for r in kept)
            assert kept[0].split(" ...")[0] in " ".join(reviews[0].split())  # the first review, cut at a word
        assert item_profile_messages(item, budget, "business") == messages  # deterministic


def test_truncate_exact():
    budget = PromptBudget(chars_per_token=1.0)
    assert budget.truncate("one two   three four", 100) == "one two three four"
    assert budget.truncate("one two three four", 12) == "one two ..."
    assert budget.truncate("one two three four", 3) == "..."


def test_user_prompt_keeps_most_recent():
    budget = PromptBudget(max_tokens=100, chars_per_token=1.0)
    history = [HistoryEntry(f"Title {k}") for k in range(10)]
    content = user_profile_messages(history, budget, "movie")[1]["content"]
    kept = json.loads(content.split(":\n", 1)[1])
    assert [e["title"] for e in kept] == ["Title 7", "Title 8", "Title 9"]  # oldest dropped, order kept


def test_hard_negative_prompt():
    item = ItemRecord("1", {"movie_title": "Toy Story", "genre": "Animation Children's Comedy"})
    msgs = hard_negative_messages(
        "Likes animated films.", item, "Families enjoy it.", PromptBudget(), "movie"
    )
    assert "hard_negative_item" in msgs[0]["content"] and "movie" in msgs[0]["content"]
    assert "Likes animated films." in msgs[1]["content"] and "Toy Story" in msgs[1]["content"]
    assert "per user" not in system_prompt("hard_negatives_per_user", "movie", k=3) and "3" in system_prompt(
        "hard_negatives_per_user", "movie", k=3
    )


def test_item_text_ml100k_embedded():
    folder = dataset_dir("nowhere", "ml-100k")
    texts = load_item_text(folder, "ml-100k", ["movie_title", "release_year", "class"])
    assert texts["1"] == {
        "movie_title": "Toy Story",
        "release_year": "1995",
        "class": "Animation Children's Comedy",
    }
    assert len(texts) == 1682
    assert load_reviews(folder, "ml-100k") == {}  # no review column


def test_item_text_real_ml1m_and_toys(shared_data):
    ml = load_item_text(dataset_dir(shared_data, "ml-1m"), "ml-1m", ["movie_title", "genre"])
    assert ml["2"] == {"movie_title": "Jumanji", "genre": "Adventure Children's Fantasy"}
    toys = load_item_text(dataset_dir(shared_data, "toys"), "toys", ["keywords"])
    assert toys["B0000A1Z5K"] == {"keywords": "plush dr seuss cat"}
    with pytest.raises(TextFieldError, match=r"toys\.item: no column\(s\) \['title'\]"):
        load_item_text(dataset_dir(shared_data, "toys"), "toys", ["title"])


def test_reviews_from_inter(tmp_path):
    (tmp_path / "d.inter").write_text(
        "user_id:token\titem_id:token\treview:token_seq\nu1\ti1\tgreat fun\nu2\ti1\t\n"
    )
    assert load_reviews(tmp_path, "d") == {("u1", "i1"): "great fun"}
    assert list(read_atomic(tmp_path / "d.inter").columns) == ["user_id", "item_id", "review"]
