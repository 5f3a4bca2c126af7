"""The batch writer's statements on the driver's cursor store what SQLAlchemy would.

write_batch runs its hot statements as SQL text with values already in the driver's form;
everything else in the store reads and writes those rows through SQLAlchemy's types. These
tests pin the two together: the stored text of every datetime on SQLite, and groups and
hourly counts equal to a model of them over random batches (many groups per statement,
statements split in chunks, replays, deltas, resolutions and regressions).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, text
from tests.store._support import T0, DeltaFactory, RecordFactory

from errorkit.store import CountDelta, ErrorRecord, ErrorStore, open_store
from errorkit.store._driver import MAX_ROWS
from errorkit.store._rollup import DIMENSIONS, dims_key, hour_of
from errorkit.store.schema import UTCDateTime, error_counts_hourly, error_groups

PLUS_TWO = timezone(timedelta(hours=2))


def test_sqlite_datetimes_are_stored_as_sqlalchemy_stores_them(
    tmp_path: Path, make_record: RecordFactory, make_delta: DeltaFactory
) -> None:
    """Every datetime the writer stores on SQLite is the text SQLAlchemy's UTCDateTime
    binds for the same value: UTC, aware in another offset, naive, whole seconds."""
    moments = [
        datetime(2025, 3, 1, 12, 0, 1, 250_000, tzinfo=UTC),
        datetime(2025, 3, 1, 15, 30, tzinfo=PLUS_TWO),
        datetime(2025, 3, 1, 9, 59, 59, 999_999),  # naive: taken as UTC
        datetime(2025, 3, 1, 11, 0),
    ]
    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:

        def bind(value: datetime) -> str:
            """The text SQLAlchemy stores for ``value`` in a UTCDateTime column."""
            with store.engine.connect() as conn:
                query = text("SELECT :value").bindparams(
                    bindparam("value", value, type_=UTCDateTime())
                )
                return str(conn.execute(query).scalar_one())

        records = [
            make_record(timestamp=when, fingerprint=f"fp-{n % 2}", service=f"s{n}")
            for n, when in enumerate(moments)
        ]
        delta = make_delta(fingerprint="fp-delta", first_seen=moments[0], last_seen=moments[1])
        store.write_batch(records, [delta])
        store.resolve_group("fp-0")
        later = datetime.now(UTC) + timedelta(seconds=5)
        regressed = store.write_batch([make_record(timestamp=later, fingerprint="fp-0")])
        assert regressed.regressed_groups == ("fp-0",)
        with store.engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT error_id, timestamp FROM errors")).all())
            groups = {
                row[0]: row[1:]
                for row in conn.execute(
                    text(
                        "SELECT fingerprint, first_seen, last_seen, regressed_at FROM error_groups"
                    )
                )
            }
            hours = {row[0] for row in conn.execute(text("SELECT hour FROM error_counts_hourly"))}
            created = {row[0] for row in conn.execute(text("SELECT created_at FROM errors"))}
    for record in records:
        assert stored[record.error_id] == bind(record.timestamp)
    in_utc = [bind(when) for when in moments]
    assert groups["fp-1"][:2] == (min(in_utc[1], in_utc[3]), max(in_utc[1], in_utc[3]))
    assert groups["fp-0"][:2] == (min(in_utc[0], in_utc[2]), bind(later))
    assert groups["fp-delta"][:2] == (bind(moments[0]), bind(moments[1]))
    regressed_at = groups["fp-0"][2]
    assert isinstance(regressed_at, str)
    assert regressed_at == bind(datetime.fromisoformat(regressed_at))  # the same form
    assert groups["fp-1"][2] is None
    expected_hours = {bind(hour_of(when.astimezone(UTC))) for when in moments}
    expected_hours.add(bind(hour_of(later)))
    assert hours == expected_hours
    assert all(value == bind(datetime.fromisoformat(value)) for value in created)


@dataclass
class _ModelGroup:
    count: int
    first_seen: datetime
    last_seen: datetime
    last_error_id: str | None
    status: str = "unresolved"
    resolved_at: datetime | None = None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Model:
    """What the groups and hourly counts must hold: each batch's new rows and deltas are
    summed per group, then added to the group as the writer's upsert does."""

    def __init__(self) -> None:
        self.groups: dict[str, _ModelGroup] = {}
        self.hours: dict[tuple[datetime, str], int] = {}
        self.ids: set[str] = set()
        self.delta_ids: set[str] = set()

    def write(self, records: list[ErrorRecord], deltas: list[CountDelta]) -> list[str]:
        """Apply a batch; returns the fingerprints it reopens."""
        batch: dict[str, _ModelGroup] = {}
        latest: dict[str, datetime] = {}  # the newest new row's time, per group
        for record in records:
            if record.error_id in self.ids:
                continue
            self.ids.add(record.error_id)
            when = _utc(record.timestamp)
            self._add(batch, record.fingerprint, 1, when, when)
            if record.fingerprint not in latest or when >= latest[record.fingerprint]:
                latest[record.fingerprint] = when
                batch[record.fingerprint].last_error_id = record.error_id
            values = tuple(getattr(record, name) for name in DIMENSIONS)
            key = (hour_of(when), dims_key(values))
            self.hours[key] = self.hours.get(key, 0) + 1
        for delta in deltas:
            if delta.delta_id in self.delta_ids:
                continue
            self.delta_ids.add(delta.delta_id)
            first, last = _utc(delta.first_seen), _utc(delta.last_seen)
            self._add(batch, delta.fingerprint, delta.count, first, last)
        reopened = []
        for fingerprint, new in sorted(batch.items()):
            group = self.groups.get(fingerprint)
            if group is None:
                self.groups[fingerprint] = new
                continue
            if group.status == "resolved" and (
                group.resolved_at is None or new.last_seen > group.resolved_at
            ):
                group.status = "regressed"
                reopened.append(fingerprint)
            if new.last_error_id is not None and new.last_seen >= group.last_seen:
                group.last_error_id = new.last_error_id
            group.count += new.count
            group.first_seen = min(group.first_seen, new.first_seen)
            group.last_seen = max(group.last_seen, new.last_seen)
        return reopened

    @staticmethod
    def _add(
        groups: dict[str, _ModelGroup],
        fingerprint: str,
        count: int,
        first: datetime,
        last: datetime,
    ) -> None:
        group = groups.get(fingerprint)
        if group is None:
            groups[fingerprint] = _ModelGroup(count, first, last, None)
            return
        group.count += count
        group.first_seen = min(group.first_seen, first)
        group.last_seen = max(group.last_seen, last)


def _stored_groups(store: ErrorStore) -> dict[str, tuple[Any, ...]]:
    columns = (
        error_groups.c.fingerprint,
        error_groups.c.count,
        error_groups.c.first_seen,
        error_groups.c.last_seen,
        error_groups.c.last_error_id,
        error_groups.c.status,
    )
    with store.engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(select(*columns))}


def _stored_hours(store: ErrorStore) -> dict[tuple[datetime, str], int]:
    table = error_counts_hourly
    with store.engine.connect() as conn:
        rows = conn.execute(select(table.c.hour, table.c.dims, table.c.total))
        return {(hour, dims): total for hour, dims, total in rows}


def test_random_batches_leave_groups_and_counts_as_a_model_of_them(
    store: ErrorStore, make_record: RecordFactory, make_delta: DeltaFactory
) -> None:
    """Random batches (one to a few times MAX_ROWS rows and groups, timestamps in other
    offsets and naive, replays, deltas, resolutions) leave every group's count, first and
    last seen, last error and status, and every hourly count, as the model computes them."""
    rng = random.Random(15)
    model = _Model()
    written: list[ErrorRecord] = []
    zones = [UTC, PLUS_TWO, None]
    # Rows from before any resolution, and from after every one (they reopen groups).
    starts = [T0, datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)]
    reopened = 0
    for round_ in range(14):
        size = rng.choice([1, 3, 8, 40, MAX_ROWS + 37, 2 * MAX_ROWS + 5])
        spread = rng.choice([2, 9, size + 1])  # a few groups, or one per row
        start = starts[round_ > 4 and rng.random() < 0.5]
        records = []
        for _ in range(size):
            when = start + timedelta(seconds=rng.randrange(0, 3 * 86_400))
            zone = rng.choice(zones)
            when = when.replace(tzinfo=None) if zone is None else when.astimezone(zone)
            records.append(
                make_record(
                    fingerprint=f"fp-{rng.randrange(spread)}",
                    timestamp=when,
                    severity=rng.choice(["error", "warning"]),
                    service=rng.choice(["api", None]),
                )
            )
        if written and rng.random() < 0.5:
            records += rng.sample(written, min(len(written), rng.randrange(1, 30)))
        deltas = [
            make_delta(
                fingerprint=f"fp-{rng.randrange(spread)}",
                count=rng.randrange(1, 9),
                first_seen=T0 + timedelta(minutes=rng.randrange(0, 60)),
                last_seen=T0 + timedelta(hours=rng.randrange(1, 80)),
            )
            for _ in range(rng.randrange(0, 4))
        ]
        result = store.write_batch(records, deltas)
        assert list(result.regressed_groups) == model.write(records, deltas), round_
        reopened += len(result.regressed_groups)
        written += records
        if round_ % 4 == 3:  # resolve a few groups; later rows may reopen them
            for fingerprint in rng.sample(sorted(model.groups), min(3, len(model.groups))):
                resolved = store.resolve_group(fingerprint)
                group = model.groups[fingerprint]
                group.status, group.resolved_at = "resolved", resolved.resolved_at
    expected = {
        fp: (g.count, g.first_seen, g.last_seen, g.last_error_id, g.status)
        for fp, g in model.groups.items()
    }
    assert _stored_groups(store) == expected
    assert _stored_hours(store) == model.hours
    assert store.count() == len(model.ids)
    assert reopened > 0  # the rounds did reopen groups


def test_a_batch_of_only_replays_and_applied_deltas_writes_nothing(
    store: ErrorStore, make_record: RecordFactory, make_delta: DeltaFactory
) -> None:
    """Replaying a whole batch (rows and deltas) leaves groups and counts untouched."""
    records = [make_record(fingerprint=f"fp-{n % 3}") for n in range(20)]
    deltas = [make_delta(delta_id=str(uuid.uuid4()))]
    store.write_batch(records, deltas)
    groups, hours = _stored_groups(store), _stored_hours(store)
    result = store.write_batch(records, deltas)
    assert (result.inserted, result.deltas_applied, result.new_groups) == (0, 0, ())
    assert _stored_groups(store) == groups
    assert _stored_hours(store) == hours
