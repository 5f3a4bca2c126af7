"""Groups (issues): listing, sorting, lookup and triage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.store._support import T0, DeltaFactory, RecordFactory

from errorkit.store import ErrorStore, InvalidQuery, NotFound


@pytest.fixture
def three(store: ErrorStore, make_record: RecordFactory, make_delta: DeltaFactory) -> ErrorStore:
    """Groups a (2 rows: oldest and newest), b (3 rows + 10 counted), c (1 db error)."""
    store.write_batch(
        [
            make_record(fingerprint="a", title="KeyError: user", timestamp=T0),
            make_record(fingerprint="a", title="KeyError: user", timestamp=T0 + timedelta(hours=9)),
            *[
                make_record(
                    fingerprint="b", title="Timeout calling LLM", timestamp=T0 + timedelta(hours=i)
                )
                for i in (1, 2, 3)
            ],
            make_record(
                fingerprint="c",
                title="OperationalError: locked",
                error_type="database_error",
                error_code="DB_LOCKED",
                timestamp=T0 + timedelta(hours=4),
            ),
        ],
        [
            make_delta(
                fingerprint="b",
                count=10,
                first_seen=T0 + timedelta(hours=1),
                last_seen=T0 + timedelta(hours=3),
            )
        ],
    )
    return store


def fingerprints(store: ErrorStore, **arguments: object) -> list[str]:
    return [g.fingerprint for g in store.groups(**arguments)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sort", "descending", "expected"),
    [
        ("last_seen", True, ["a", "c", "b"]),
        ("last_seen", False, ["b", "c", "a"]),
        ("count", True, ["b", "a", "c"]),
        ("first_seen", True, ["c", "b", "a"]),
        ("first_seen", False, ["a", "b", "c"]),
    ],
)
def test_groups_sort(three: ErrorStore, sort: str, descending: bool, expected: list[str]) -> None:
    """Groups sort by last_seen, count or first_seen, either way."""
    assert fingerprints(three, sort=sort, descending=descending) == expected


def test_groups_filters_and_total(three: ErrorStore) -> None:
    """Type, search and status filters narrow the list; total counts every match."""
    three.resolve_group("a")
    assert fingerprints(three, error_type="database_error") == ["c"]
    assert fingerprints(three, search="llm") == ["b"]
    assert fingerprints(three, search="DB_LOCK") == ["c"]
    assert fingerprints(three, status="resolved") == ["a"]
    assert fingerprints(three, status=["unresolved", "regressed"]) == ["c", "b"]
    page = three.groups(limit=1, offset=1)
    assert (page.total, len(page)) == (3, 1)


def test_group_counts_are_exact(three: ErrorStore) -> None:
    """A group's count includes occurrences only counted through deltas."""
    counts = {g.fingerprint: g.count for g in three.groups()}
    assert counts == {"a": 2, "b": 13, "c": 1}


def test_group_lookup_by_fingerprint_or_id(three: ErrorStore) -> None:
    """group() finds by fingerprint, by numeric id, or by id given as text."""
    by_fp = three.group("c")
    assert by_fp is not None
    assert three.group(by_fp.id) == by_fp
    assert three.group(str(by_fp.id)) == by_fp
    assert three.group("zzz") is None
    assert three.group(99_999) is None


def test_resolve_group_resolves_its_rows(three: ErrorStore) -> None:
    """Resolving a group marks its stored errors resolved and keeps the notes."""
    group = three.resolve_group("b", "raised the LLM timeout")
    assert (group.status, group.notes) == ("resolved", "raised the LLM timeout")
    assert group.resolved_at is not None
    assert all(e.resolved for e in three.list(fingerprint="b"))
    assert not any(e.resolved for e in three.list(fingerprint="a"))


def test_unresolve_group_reopens_rows(three: ErrorStore) -> None:
    """Unresolving reopens the group and its stored errors."""
    three.resolve_group("b")
    group = three.unresolve_group("b")
    assert (group.status, group.resolved_at) == ("unresolved", None)
    assert not any(e.resolved for e in three.list(fingerprint="b"))


def test_ignore_group_leaves_rows_alone(three: ErrorStore) -> None:
    """Ignoring changes the group's status only."""
    group = three.ignore_group("c", "flaky CI disk")
    assert (group.status, group.notes) == ("ignored", "flaky CI disk")
    assert not any(e.resolved for e in three.list(fingerprint="c"))


@pytest.mark.parametrize("action", ["resolve_group", "unresolve_group", "ignore_group"])
def test_group_actions_on_unknown_group_raise(store: ErrorStore, action: str) -> None:
    """Triage of a group that does not exist raises NotFound naming it."""
    with pytest.raises(NotFound, match="no error group has fingerprint or id 'ghost'"):
        getattr(store, action)("ghost")


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"sort": "title"}, "sort must be one of"),
        ({"status": "open"}, "unknown group status 'open'"),
        ({"limit": 10_001}, "limit must be between 1 and 10000"),
    ],
)
def test_groups_refuses_bad_arguments(
    store: ErrorStore, arguments: dict[str, object], words: str
) -> None:
    """A bad sort key, status or limit raises InvalidQuery naming what is accepted."""
    with pytest.raises(InvalidQuery, match=words):
        store.groups(**arguments)  # type: ignore[arg-type]
