"""The query of a pair is made of its item's lines and its user's lines, the factored store's two parts."""

from __future__ import annotations

import numpy as np
from test_inference import fake_view

from recbole_hnlm.stages.query_text import QueryBuilder
from recbole_hnlm.stages.supervision_settings import SupervisionSettings


def builder_with_cf() -> QueryBuilder:
    view = fake_view()
    builder = QueryBuilder.build(view, None, SupervisionSettings(hnlm_use_profiles=False))
    builder.cf_user = {u: np.array([0.5, -1.25]) for u in view.histories}
    builder.cf_item = {i: np.array([2.0, 0.125]) for i in view.items}
    return builder


def test_the_query_text_is_unchanged_by_the_split():
    # the text written before the per-user/per-item split: stores built then keep their queries
    builder = builder_with_cf()
    assert builder.query("u1", "i3") == (
        f"Item: {builder.item_text['i3']}\nUser: {builder.user_text['u1']}"
        "\nUser embedding: [0.50,-1.25]\nItem embedding: [2.00,0.12]"
    )
    builder.cf_user = builder.cf_item = None
    assert builder.query("u1", "i3") == f"Item: {builder.item_text['i3']}\nUser: {builder.user_text['u1']}"


def test_the_query_is_made_of_the_user_part_and_the_item_part():
    for builder in (builder_with_cf(), QueryBuilder.build(fake_view(), None, SupervisionSettings())):
        for user, item in (("u0", "i1"), ("u4", "i7")):
            lines = builder.query(user, item).split("\n")
            parts = builder.item_part(item).split("\n") + builder.user_part(user).split("\n")
            assert sorted(lines) == sorted(parts)
            assert builder.item_part(item).startswith("Item: ") and builder.user_part(user).startswith(
                "User: "
            )
