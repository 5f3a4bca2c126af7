"""Projects and DSN keys: made, listed, revoked, checked on ingest (with a short cache),
and the ingest outcome counters added up exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from errorkit.store import ErrorStore, InvalidQuery, NotFound, open_store
from errorkit.store.projects import KeyRefused, Outcome, ProjectStore
from errorkit.store.schema import project_keys


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_projects_are_made_listed_and_found_by_id_or_name(store: ErrorStore) -> None:
    """A project is found by its id (int or digits) and by its name."""
    projects = ProjectStore(store)
    shop = projects.create_project("shop")
    billing = projects.create_project("billing-api")
    assert [p.name for p in projects.list_projects()] == ["shop", "billing-api"]
    assert projects.project(shop.id) == shop
    assert projects.project(str(billing.id)) == billing
    assert projects.project("billing-api") == billing
    assert projects.project("nope") is None
    assert shop.created_at.tzinfo is not None


@pytest.mark.parametrize("name", ["", " ", "has space", "-dash", "123", "x" * 65, "a/b"])
def test_bad_project_names_are_refused(store: ErrorStore, name: str) -> None:
    """Names that could not be a service name (or could be read as an id) are refused."""
    with pytest.raises(InvalidQuery, match="a project name is 1 to 64"):
        ProjectStore(store).create_project(name)


def test_a_taken_project_name_is_refused(store: ErrorStore) -> None:
    projects = ProjectStore(store)
    projects.create_project("shop")
    with pytest.raises(InvalidQuery, match="already a project named 'shop'"):
        projects.create_project("shop")


def test_keys_are_made_listed_and_give_a_dsn(store: ErrorStore) -> None:
    """Each key has 32 hex characters, a label, an optional rate limit and a DSN."""
    projects = ProjectStore(store)
    shop = projects.create_project("shop")
    other = projects.create_project("other")
    key = projects.create_key("shop", label="production", rate_limit=600)
    plain = projects.create_key(shop.id)
    projects.create_key(other.id)
    assert len(key.public_key) == 32
    assert int(key.public_key, 16) >= 0
    assert key.public_key != plain.public_key
    assert (key.label, key.rate_limit, key.state()) == ("production", 600, "active")
    assert (plain.label, plain.rate_limit) == ("default", None)
    assert key.dsn("http://127.0.0.1:8080") == f"http://{key.public_key}@127.0.0.1:8080/{shop.id}"
    assert key.dsn("https://errors.example.com/tracker/") == (
        f"https://{key.public_key}@errors.example.com/tracker/{shop.id}"
    )
    assert [k.id for k in projects.list_keys("shop")] == [key.id, plain.id]
    assert len(projects.list_keys()) == 3
    assert key.as_dict("http://h:1")["dsn"] == f"http://{key.public_key}@h:1/{shop.id}"


def test_bad_key_input_is_refused(store: ErrorStore) -> None:
    projects = ProjectStore(store)
    projects.create_project("shop")
    with pytest.raises(InvalidQuery, match="rate_limit is events per minute"):
        projects.create_key("shop", rate_limit=0)
    with pytest.raises(InvalidQuery, match="a key label is 1 to 200"):
        projects.create_key("shop", label="  ")
    with pytest.raises(NotFound, match="no project with id or name 'ghost'"):
        projects.create_key("ghost")
    with pytest.raises(NotFound, match="no project"):
        projects.list_keys(99)
    key = projects.create_key("shop")
    with pytest.raises(InvalidQuery, match="not an http"):
        key.dsn("ftp://example.com")
    with pytest.raises(InvalidQuery, match="without user"):
        key.dsn("http://me@example.com")


def test_revoke_by_id_or_public_key(store: ErrorStore) -> None:
    """Revoking twice keeps the first time; an unknown key is NotFound."""
    projects = ProjectStore(store)
    projects.create_project("shop")
    first = projects.create_key("shop")
    second = projects.create_key("shop")
    revoked = projects.revoke_key(first.id)
    assert revoked.state() == "revoked"
    again = projects.revoke_key(first.public_key)
    assert again.revoked_at == revoked.revoked_at
    assert projects.revoke_key(str(second.id)).state() == "revoked"
    with pytest.raises(NotFound, match="no DSN key 999"):
        projects.revoke_key(999)
    with pytest.raises(NotFound, match="no DSN key"):
        projects.revoke_key("0" * 32)
    with pytest.raises(InvalidQuery, match="its id or its 32-hex public key"):
        projects.revoke_key("not-a-key")


def test_authenticate_answers_401_and_403(store: ErrorStore) -> None:
    """No key or an unknown one is 401; a revoked key or another project's key is 403,
    and the refusal never names the project the key belongs to."""
    projects = ProjectStore(store, cache_ttl=0)
    shop = projects.create_project("shop")
    other = projects.create_project("secret-project")
    key = projects.create_key(shop.id)
    foreign = projects.create_key(other.id)
    project, found = projects.authenticate(shop.id, key.public_key)
    assert (project, found) == (shop, key)
    assert projects.authenticate(shop.id, key.public_key.upper())[1] == key
    cases = {
        None: (401, "missing"),
        "": (401, "missing"),
        "zz": (401, "unknown"),
        "0" * 32: (401, "unknown"),
        foreign.public_key: (403, "wrong_project"),
    }
    for sent, (status, reason) in cases.items():
        with pytest.raises(KeyRefused) as refused:
            projects.authenticate(shop.id, sent)
        assert (refused.value.status, refused.value.reason) == (status, reason)
        assert "secret-project" not in str(refused.value)
        assert str(other.id) not in str(refused.value)
    with pytest.raises(KeyRefused) as refused:
        projects.authenticate(999, key.public_key)
    assert refused.value.status == 403
    projects.revoke_key(key.id)
    with pytest.raises(KeyRefused) as refused:
        projects.authenticate(shop.id, key.public_key)
    assert (refused.value.status, refused.value.reason) == (403, "revoked")


def test_revocation_elsewhere_takes_effect_when_the_cache_expires(store_url: str) -> None:
    """Another node's revocation is seen once the cached lookup is older than the TTL;
    the node that revokes sees it at once."""
    clock = Clock()
    with open_store(store_url) as node_a, open_store(store_url) as node_b:
        ingest = ProjectStore(node_a, cache_ttl=5, clock=clock)
        admin = ProjectStore(node_b)
        shop = admin.create_project("shop")
        key = admin.create_key(shop.id)
        assert ingest.authenticate(shop.id, key.public_key)[1].id == key.id
        admin.revoke_key(key.id)
        clock.now += 4.9
        assert ingest.authenticate(shop.id, key.public_key)[1].revoked_at is None
        clock.now += 0.2
        with pytest.raises(KeyRefused) as refused:
            ingest.authenticate(shop.id, key.public_key)
        assert refused.value.reason == "revoked"
        fresh = ingest.create_key(shop.id)
        ingest.revoke_key(fresh.public_key)
        with pytest.raises(KeyRefused):
            ingest.authenticate(shop.id, fresh.public_key)


def test_an_unknown_key_is_remembered_as_unknown_for_the_ttl(store_url: str) -> None:
    """A miss is cached too (a flood of bad keys does not read the database on every
    request); a key written meanwhile is accepted once the miss expires."""
    clock = Clock()
    public_key = "ab" * 16
    with open_store(store_url) as node:
        ingest = ProjectStore(node, cache_ttl=5, clock=clock)
        shop = ingest.create_project("shop")
        with pytest.raises(KeyRefused):
            ingest.authenticate(shop.id, public_key)
        with node.engine.begin() as connection:
            connection.execute(
                insert(project_keys).values(
                    project_id=shop.id,
                    public_key=public_key,
                    label="written elsewhere",
                    created_at=datetime.now(UTC),
                )
            )
        clock.now += 4.9
        with pytest.raises(KeyRefused):
            ingest.authenticate(shop.id, public_key)
        clock.now += 0.1
        assert ingest.authenticate(shop.id, public_key)[1].label == "written elsewhere"


def test_outcomes_add_up(store: ErrorStore) -> None:
    """Quantities of the same counter are added, in one call and across calls."""
    projects = ProjectStore(store)
    shop = projects.create_project("shop")
    other = projects.create_project("other")
    projects.add_outcomes(
        [
            Outcome(shop.id, "dropped", "transaction", "unsupported_item", 2),
            Outcome(shop.id, "dropped", "transaction", "unsupported_item", 3),
            Outcome(shop.id, "client_report", "error", "queue_overflow", 7),
            Outcome(other.id, "dropped", "span", "unsupported_item", 1),
        ]
    )
    projects.add_outcomes([Outcome(shop.id, "dropped", "transaction", "unsupported_item", 10)])
    projects.add_outcomes([])
    assert projects.outcomes("shop") == [
        (shop.id, "client_report", "error", "queue_overflow", 7),
        (shop.id, "dropped", "transaction", "unsupported_item", 15),
    ]
    assert len(projects.outcomes()) == 3
    with pytest.raises(InvalidQuery, match="outcome source must be one of"):
        projects.add_outcomes([Outcome(shop.id, "lost", "error", "x", 1)])
    with pytest.raises(InvalidQuery, match="quantity is a whole number >= 0"):
        projects.add_outcomes([Outcome(shop.id, "dropped", "error", "x", -1)])
    with pytest.raises(InvalidQuery, match="reason is 1 to 64"):
        projects.add_outcomes([Outcome(shop.id, "dropped", "error", "r" * 65, 1)])
    assert len(projects.outcomes()) == 3


def test_concurrent_outcomes_from_threads_are_exact(store_url: str) -> None:
    """Threads with their own connections adding to the same counters lose nothing."""
    with open_store(store_url) as setup:
        shop = ProjectStore(setup).create_project("shop")
    threads_n, rounds = 6, 20
    barrier = threading.Barrier(threads_n)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            with open_store(store_url) as node:
                projects = ProjectStore(node)
                barrier.wait()
                for _ in range(rounds):
                    projects.add_outcomes(
                        [
                            Outcome(shop.id, "dropped", "span", "unsupported_item", 1),
                            Outcome(shop.id, "client_report", "error", "rate_limited", 2),
                        ]
                    )
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads_n)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    with open_store(store_url) as check:
        assert ProjectStore(check).outcomes(shop.id) == [
            (shop.id, "client_report", "error", "rate_limited", 2 * threads_n * rounds),
            (shop.id, "dropped", "span", "unsupported_item", threads_n * rounds),
        ]
