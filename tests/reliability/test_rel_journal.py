"""The ``vector_synced`` write journal must not report drift after ordinary operations."""

from __future__ import annotations


def test_delete_of_current_version_leaves_no_unsynced_flag(memory):
    a = memory.add("user drives a Volvo", user_id="u")
    b = memory.supersede(a.id, "user drives a Tesla")
    assert memory.check_consistency().ok
    memory.delete(b.id)
    report = memory.check_consistency()
    assert report.unsynced == [], report


def test_dedup_merge_leaves_no_unsynced_flag(memory):
    memory.add("user likes green tea", user_id="u")
    memory.add("User likes green tea.", user_id="u")  # exact-dedup twin: merged
    assert memory.stats(user_id="u").total == 1
    report = memory.check_consistency()
    assert report.unsynced == [], report
