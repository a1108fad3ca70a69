"""The stage report: what it says about dropped cache lines matches what was sent."""

from __future__ import annotations

from recbole_hnlm.stages.runner import StageReport


def test_dropped_cache_lines_do_not_claim_requests_were_sent_again():
    report = StageReport("profiles")
    report.cache_lines_dropped = 2
    line = report.summary()
    assert "sent again" not in line
    assert "2 unreadable cache lines dropped (no request needed sending)" in line
    report.sent = 3
    assert "2 unreadable cache lines dropped (3 requests sent to the server)" in report.summary()
    assert report.as_dict()["sent"] == 3
