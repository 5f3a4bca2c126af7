"""Breaker state shared by every process and host through Redis.

Each breaker is one hash ``errorkit:breaker:{namespace}:{name}`` (state, generation,
counters, ``opened_at``, last failure, and from the first opening the recovery timeout and
probe limit, so tools can say when it probes next), a sorted set ``...|probes`` of
half-open probe leases (score = expiry) and, with a failure rate, a hash ``...|window`` of
ten time buckets. Every transition is one Lua script, so it is atomic across processes:

* a process that joins never writes initial state, so it never resets counters or loses an
  ``opened_at``;
* half-open probes are limited across all processes, each holding a lease that expires
  after ``probe_timeout``, so a prober that crashed cannot wedge the breaker;
* with the system clock, time comes from the Redis server (``TIME``), so hosts agree; a
  breaker given another clock (tests) uses that clock instead.

If Redis cannot be reached the breaker keeps protecting the app with this process's own
state (going on from the state it last saw), retries Redis after ``retry_interval`` seconds,
and counts the failure as an internal error (it never raises a Redis error into the
protected call). A shared state that comes back empty (or closed, after such an outage) is
overruled by the more severe state this process knows, written back with its
``opened_at``. Every change of state a process observes, whoever made it, is announced to
its listeners.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from errorkit._guard import report_internal_error
from errorkit.resilience._common import check_seconds, safe_message
from errorkit.resilience.breaker import (
    BreakerConfig,
    BreakerStatus,
    CircuitState,
    LastFailure,
    MemoryState,
    Outcome,
    Ticket,
    validate_breaker_name,
)
from errorkit.resilience.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["RedisBackend", "RedisState", "SharedBreakerState"]

logger = logging.getLogger("errorkit.breaker")

_ACQUIRE = """
local key, probes = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local recovery = tonumber(ARGV[2])
local h = redis.call('HMGET', key, 'state', 'gen', 'opened_at', 'failures')
local state = h[1]
local gen = tonumber(h[2]) or 0
local opened = tonumber(h[3])
-- The state this process last saw (or kept while Redis was away): when the shared state
-- came back empty (or closed, after an outage), the more severe state wins, written back.
local floor, floor_at, mode = ARGV[6], tonumber(ARGV[7]), ARGV[8]
local restored = ''
if floor ~= '' and floor_at and ((not state) or (mode == 'closed' and state == 'closed')) then
  restored = state or 'empty'
  gen = gen + 1
  redis.call('HSET', key, 'state', floor, 'gen', gen, 'opened_at', tostring(floor_at),
             'successes', 0, 'recovery_timeout', ARGV[2], 'half_open_max_calls', ARGV[3])
  redis.call('DEL', probes)
  redis.call('EXPIRE', key, ARGV[5])
  state = floor
  opened = floor_at
end
state = state or 'closed'
local shown = opened and tostring(opened) or ''
if state == 'closed' then
  return {1, tostring(gen), tostring(tonumber(h[4]) or 0), '', state, shown, restored}
end
local moved = ''
if state == 'open' then
  opened = opened or now
  local left = opened + recovery - now
  if left > 0 then
    redis.call('HINCRBY', key, 'rejected', 1)
    return {0, tostring(left), '', '', state, tostring(opened), restored}
  end
  gen = gen + 1
  redis.call('HSET', key, 'state', 'half_open', 'gen', gen, 'successes', 0)
  redis.call('DEL', probes)
  moved = 'open>half_open'
  state = 'half_open'
end
redis.call('ZREMRANGEBYSCORE', probes, '-inf', now)
if redis.call('ZCARD', probes) >= tonumber(ARGV[3]) then
  redis.call('HINCRBY', key, 'rejected', 1)
  local first = redis.call('ZRANGE', probes, 0, 0, 'WITHSCORES')
  local left = tonumber(first[2]) - now
  if left > recovery then left = recovery end
  if left < 0.001 then left = 0.001 end
  return {0, tostring(left), '', moved, state, shown, restored}
end
local lease = redis.call('HINCRBY', key, 'lease_seq', 1)
redis.call('ZADD', probes, now + tonumber(ARGV[4]), lease)
redis.call('EXPIRE', key, ARGV[5])
redis.call('EXPIRE', probes, ARGV[5])
return {2, tostring(gen), tostring(lease), moved, state, shown, restored}
"""

_RECORD = """
local key, probes, win = KEYS[1], KEYS[2], KEYS[3]
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local outcome = ARGV[5]
local ttl = ARGV[13]
if ARGV[3] == '1' then redis.call('ZREM', probes, ARGV[4]) end
if outcome == 'fail' then
  redis.call('HSET', key, 'last_failure_type', ARGV[11], 'last_failure_message', ARGV[12],
             'last_failure_at', tostring(now))
  redis.call('EXPIRE', key, ttl)
end
local h = redis.call('HMGET', key, 'state', 'gen')
local state = h[1] or 'closed'
local gen = tonumber(h[2]) or 0
if outcome == 'abandon' or tonumber(ARGV[2]) ~= gen then return '' end
local function move(new)
  gen = gen + 1
  redis.call('HSET', key, 'state', new, 'gen', gen, 'successes', 0)
  redis.call('DEL', probes)
  if new == 'open' then
    redis.call('HSET', key, 'opened_at', tostring(now))
    if ARGV[14] then
      redis.call('HSET', key, 'recovery_timeout', ARGV[14], 'half_open_max_calls', ARGV[15])
    end
  elseif new == 'closed' then
    redis.call('HSET', key, 'failures', 0)
    redis.call('HDEL', key, 'opened_at')
    redis.call('DEL', win)
  end
  redis.call('EXPIRE', key, ttl)
end
if state == 'closed' then
  local open = false
  if outcome == 'ok' then
    redis.call('HSET', key, 'failures', 0)
  else
    local f = redis.call('HINCRBY', key, 'failures', 1)
    local threshold = tonumber(ARGV[6])
    if threshold > 0 and f >= threshold then open = true end
  end
  local rate = tonumber(ARGV[8])
  if rate then
    local idx = math.floor(now / (tonumber(ARGV[9]) / 10))
    redis.call('HINCRBY', win, 'c:' .. idx, 1)
    if outcome == 'fail' then redis.call('HINCRBY', win, 'f:' .. idx, 1) end
    local all = redis.call('HGETALL', win)
    local calls, fails = 0, 0
    for i = 1, #all, 2 do
      local field = all[i]
      if tonumber(string.sub(field, 3)) <= idx - 10 then
        redis.call('HDEL', win, field)
      elseif string.sub(field, 1, 1) == 'c' then
        calls = calls + tonumber(all[i + 1])
      else
        fails = fails + tonumber(all[i + 1])
      end
    end
    redis.call('EXPIRE', win, ttl)
    if outcome == 'fail' and calls >= tonumber(ARGV[10]) and fails >= rate * calls then
      open = true
    end
  end
  if open then
    move('open')
    return 'closed>open>' .. tostring(now)
  end
  redis.call('EXPIRE', key, ttl)
  return ''
elseif state == 'half_open' and ARGV[3] == '1' then
  if outcome == 'ok' then
    local s = redis.call('HINCRBY', key, 'successes', 1)
    if s >= tonumber(ARGV[7]) then
      move('closed')
      return 'half_open>closed'
    end
    return ''
  end
  move('open')
  return 'half_open>open>' .. tostring(now)
end
return ''
"""

_RESET = """
local h = redis.call('HMGET', KEYS[1], 'state', 'gen')
local state = h[1] or 'closed'
local gen = (tonumber(h[2]) or 0) + 1
redis.call('HSET', KEYS[1], 'state', 'closed', 'gen', gen, 'failures', 0, 'successes', 0)
redis.call('HDEL', KEYS[1], 'opened_at', 'last_failure_type', 'last_failure_message',
           'last_failure_at')
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return state
"""

# The reset an operator asks for (``errorkit breakers reset``): the same, but only for a
# breaker that has state, so a mistyped name is reported instead of created.
_RESET_KNOWN = (
    """
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) == 0 then return false end
"""
    + _RESET
)

_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.:/@-]{1,100}$")
_KEY_PREFIX = "errorkit:breaker:"
_KEY_SUFFIXES = ("|probes", "|window")


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions

    return (redis.exceptions.RedisError, OSError)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class SharedBreakerState:
    """One breaker as Redis holds it, read without any app's configuration (what
    ``errorkit breakers list`` shows)."""

    name: str
    state: CircuitState
    failures: int
    """Consecutive counted failures while closed."""
    successes: int
    """Successful probes so far in half-open."""
    rejected: int
    """Calls refused since the shared state was created."""
    probes_in_flight: int
    opened_at: datetime | None
    next_probe_at: datetime | None
    """When a probe may pass: now for a half-open breaker with a free probe slot; None when
    closed, or when no process stored the recovery timeout (state written by an errorkit
    version that did not)."""
    last_failure: LastFailure | None
    recovery_timeout: float | None
    half_open_max_calls: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": str(self.state),
            "failures": self.failures,
            "successes": self.successes,
            "rejected": self.rejected,
            "probes_in_flight": self.probes_in_flight,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "next_probe_at": self.next_probe_at.isoformat() if self.next_probe_at else None,
            "last_failure": self.last_failure.as_dict() if self.last_failure else None,
            "recovery_timeout": self.recovery_timeout,
            "half_open_max_calls": self.half_open_max_calls,
        }


def _shared_state(
    name: str, raw: Mapping[Any, Any], probes: Any, server_time: Any
) -> SharedBreakerState:
    fields: dict[str, str] = {_text(k): _text(v) for k, v in raw.items()}
    now = int(server_time[0]) + int(server_time[1]) / 1_000_000
    state = CircuitState(fields.get("state", "closed"))
    live = sorted(float(score) for _, score in (probes or []) if float(score) > now)
    opened = float(fields["opened_at"]) if "opened_at" in fields else None
    recovery = float(fields["recovery_timeout"]) if "recovery_timeout" in fields else None
    limit = int(fields["half_open_max_calls"]) if "half_open_max_calls" in fields else None
    next_probe: float | None = None
    if state is CircuitState.OPEN and opened is not None and recovery is not None:
        next_probe = max(now, opened + recovery)
    elif state is CircuitState.HALF_OPEN and limit is not None:
        next_probe = live[0] if len(live) >= limit else now
    last = None
    if "last_failure_type" in fields:
        last = LastFailure(
            fields["last_failure_type"],
            fields.get("last_failure_message", ""),
            _utc(float(fields.get("last_failure_at", now))),
        )
    return SharedBreakerState(
        name=name,
        state=state,
        failures=int(fields.get("failures", 0)),
        successes=int(fields.get("successes", 0)),
        rejected=int(fields.get("rejected", 0)),
        probes_in_flight=len(live),
        opened_at=None if opened is None else _utc(opened),
        next_probe_at=None if next_probe is None else _utc(next_probe),
        last_failure=last,
        recovery_timeout=recovery,
        half_open_max_calls=limit,
    )


def _parse_transition(value: Any) -> tuple[CircuitState, CircuitState, float | None] | None:
    """``old>new`` (a script's move), with ``>opened_at`` when it opened."""
    text = _text(value) if value is not None else ""
    if not text:
        return None
    old, new, *rest = text.split(">")
    return CircuitState(old), CircuitState(new), float(rest[0]) if rest else None


class RedisBackend:
    """Keeps breaker state in Redis so every process and host shares it.

    Pass ``url=`` (clients are made on first use), or your own ``client=``
    (``redis.Redis``) and/or ``async_client=`` (``redis.asyncio.Redis``; async breakers need
    one). ``namespace`` keeps different apps or environments apart. Keys expire
    ``key_ttl`` seconds after the last write.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        async_client: redis.asyncio.Redis | None = None,
        namespace: str = "default",
        key_ttl: float = 86_400.0,
        retry_interval: float = 5.0,
        socket_timeout: float = 0.5,
    ) -> None:
        if url is None and client is None and async_client is None:
            msg = (
                "RedisBackend() needs somewhere to keep state: pass url='redis://host:6379/0', "
                "client=redis.Redis(...) or async_client=redis.asyncio.Redis(...)"
            )
            raise ValueError(msg)
        if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
            msg = (
                f"RedisBackend(namespace={namespace!r}): use 1-100 letters, digits or "
                "_ . : / @ - (for example 'billing-prod')"
            )
            raise ValueError(msg)
        self.url = url
        self.namespace = namespace
        self.key_ttl = int(max(1.0, check_seconds("RedisBackend", "key_ttl", key_ttl)))
        self.retry_interval = check_seconds("RedisBackend", "retry_interval", retry_interval)
        self._socket_timeout = check_seconds(
            "RedisBackend", "socket_timeout", socket_timeout, allow_zero=False
        )
        self._client = client
        self._async_client = async_client
        self._lock = threading.Lock()
        self._scripts: dict[str, Any] = {}
        self._async_scripts: dict[str, Any] = {}

    def key(self, name: str) -> str:
        """The Redis key of breaker ``name``'s state."""
        return f"errorkit:breaker:{self.namespace}:{validate_breaker_name(name)}"

    # -- clients and scripts --------------------------------------------------------------------

    def client(self) -> redis.Redis:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import redis as redis_lib

                    if self.url is None:
                        msg = (
                            "this RedisBackend has only an async client, but a sync breaker "
                            "call needs a sync one: pass client=redis.Redis(...) or url=..."
                        )
                        raise TypeError(msg)
                    self._client = self._from_url(redis_lib.Redis)
        return self._client

    def async_client(self) -> redis.asyncio.Redis:
        if self._async_client is None:
            if self.url is None:
                msg = (
                    "this RedisBackend has only a sync client, but an async breaker call needs "
                    "an async one: pass async_client=redis.asyncio.Redis(...) or url=..."
                )
                raise TypeError(msg)
            import redis.asyncio as redis_async

            self._async_client = self._from_url(redis_async.Redis)
        return self._async_client

    def _from_url(self, redis_class: Any) -> Any:
        # One try per command: redis-py's own retries (ten by default) would keep a call
        # waiting on a dead server before the breaker falls back to this process's state.
        from redis.backoff import NoBackoff

        if redis_class.__module__.startswith("redis.asyncio"):
            from redis.asyncio.retry import Retry
        else:
            from redis.retry import Retry  # type: ignore[assignment]
        return redis_class.from_url(
            self.url,
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def script(self, name: str) -> Any:
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = self.client().register_script(_SOURCES[name])
        return found

    def async_script(self, name: str) -> Any:
        found = self._async_scripts.get(name)
        if found is None:
            found = self._async_scripts[name] = self.async_client().register_script(_SOURCES[name])
        return found

    # -- administration (errorkit breakers ...) -------------------------------------------------

    def breaker_names(self) -> list[str]:
        """The names of every breaker with state in this namespace, sorted (``SCAN`` on the
        key prefix, never ``KEYS``). Raises redis-py's errors if Redis cannot be reached.

        Breaker names may contain ``:``, so a namespace ``shop`` also lists the breakers of
        a namespace ``shop:eu`` (as ``eu:<name>``): keep one namespace from being another's
        prefix followed by ``:``."""
        prefix = f"{_KEY_PREFIX}{self.namespace}:"
        names: set[str] = set()
        for key in self.client().scan_iter(match=prefix + "*", count=1000):
            rest = _text(key)[len(prefix) :]
            for suffix in _KEY_SUFFIXES:
                if rest.endswith(suffix):
                    rest = rest[: -len(suffix)]
                    break
            try:
                names.add(validate_breaker_name(rest))
            except ValueError:
                continue  # not a breaker's key (written by something else)
        return sorted(names)

    def read_breaker(self, name: str) -> SharedBreakerState | None:
        """Breaker ``name``'s shared state, or None if it has none in this namespace.
        Raises redis-py's errors if Redis cannot be reached."""
        key = self.key(name)
        pipe = self.client().pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.zrange(key + "|probes", 0, -1, withscores=True)
        pipe.exists(key + "|window")
        pipe.time()
        raw, probes, window, server_time = pipe.execute()
        if not raw and not probes and not window:
            return None
        return _shared_state(name, raw or {}, probes, server_time)

    def reset_breaker(self, name: str) -> CircuitState | None:
        """Close breaker ``name`` for every process sharing this namespace, atomically;
        returns the state it was in, or None (nothing written) if it has no state here.
        Raises redis-py's errors if Redis cannot be reached."""
        key = self.key(name)
        keys = [key, key + "|probes", key + "|window"]
        old = self.script("reset_known")(keys=keys, args=[str(self.key_ttl)])
        return None if old is None else CircuitState(_text(old))

    def state_for(
        self,
        name: str,
        config: BreakerConfig,
        clock: Clock,
        notify: Callable[[CircuitState, CircuitState], None],
    ) -> RedisState:
        return RedisState(self, name, config, clock, notify)

    def close(self) -> None:
        """Close the sync client if this backend made it."""
        if self._client is not None and self.url is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the async client if this backend made it."""
        if self._async_client is not None and self.url is not None:
            await self._async_client.aclose()

    def __repr__(self) -> str:
        return f"RedisBackend(namespace={self.namespace!r})"


_SOURCES = {
    "acquire": _ACQUIRE,
    "record": _RECORD,
    "reset": _RESET,
    "reset_known": _RESET_KNOWN,
}


class RedisState:
    """One breaker's state in Redis, with this process's own state as a stand-in while
    Redis cannot be reached.

    The process remembers the last state it saw (``_seen``, and when it opened): every
    change it observes, made here or by another process, is announced as a transition, and
    a shared state that comes back empty (Redis restarted or flushed; or closed, after an
    outage during which this process kept the breaker open) is overruled by the more severe
    state this process knows, which is written back with its ``opened_at``."""

    backend = "redis"
    sync_only = False

    def __init__(
        self,
        owner: RedisBackend,
        name: str,
        config: BreakerConfig,
        clock: Clock,
        notify: Callable[[CircuitState, CircuitState], None],
    ) -> None:
        self._owner = owner
        self._name = name
        self._config = config
        self._clock = clock
        self._notify = notify
        self.key = owner.key(name)
        self._keys2 = [self.key, self.key + "|probes"]
        self._keys3 = [self.key, self.key + "|probes", self.key + "|window"]
        self._local = MemoryState(config, clock, self._local_moved)
        self._down_until = 0.0
        self._errors = _redis_errors()
        self._seen_lock = threading.Lock()
        self._seen = CircuitState.CLOSED
        """The state last announced (to listeners, logs and the gauge)."""
        self._opened: float | None = None
        """When the state this process knows opened (None: it knows it closed)."""
        rate = config.failure_rate_threshold
        self._quiet_ok = rate is None
        self._acquire_tail = [
            repr(config.recovery_timeout),
            str(config.half_open_max_calls),
            repr(config.probe_timeout),
            str(owner.key_ttl),
        ]
        # Stored when the breaker opens, so tools can tell when it probes next.
        self._shown_config = [repr(config.recovery_timeout), str(config.half_open_max_calls)]
        self._record_config = [
            str(config.failure_threshold or 0),
            str(config.success_threshold),
            "" if rate is None else repr(float(rate)),
            repr(config.window),
            str(config.minimum_calls),
        ]

    # -- what this process has seen ---------------------------------------------------------------

    def _observe(self, state: CircuitState) -> None:
        """Announce a change from the state last announced to ``state``, if it is one."""
        with self._seen_lock:
            old = self._seen
            if old is state:
                return
            self._seen = state
        self._notify(old, state)

    def _observe_move(self, old: CircuitState, new: CircuitState) -> None:
        self._observe(old)  # a state another process moved it into, unseen so far
        self._observe(new)

    def _know(self, state: CircuitState, opened: float | None) -> None:
        if state is CircuitState.CLOSED:
            self._opened = None
        elif opened is not None:
            self._opened = opened

    def _local_moved(self, old: CircuitState, new: CircuitState) -> None:
        # This process's own state, standing in while Redis is away.
        self._know(new, self._local.opened_wall)
        self._observe_move(old, new)

    def _floor(self) -> list[str]:
        """The acquire script's floor: the state to write back if the shared one is empty
        (or closed, on return from an outage), with its opened_at."""
        opened = self._opened
        state = self._seen if self._down_until == 0 else self._local.current
        if opened is None or state is CircuitState.CLOSED:
            return ["", "", ""]
        return [str(state), repr(opened), "closed" if self._down_until else "missing"]

    # -- helpers --------------------------------------------------------------------------------

    def _now(self) -> str:
        return "" if self._clock is SYSTEM_CLOCK else repr(self._clock.time())

    def _local_mode(self) -> bool:
        return self._down_until > 0 and self._clock.monotonic() < self._down_until

    def _went_down(self, exc: BaseException) -> None:
        first = self._down_until == 0
        self._down_until = self._clock.monotonic() + self._owner.retry_interval
        # Counted (errorkit_internal_errors_total{site="breaker.redis"}) and said through
        # logging only, never printed on stderr.
        report_internal_error("breaker.redis", exc, logged=True)
        if first:
            # Go on from the state last seen, so an open breaker stays open.
            self._local.adopt(self._seen, self._opened)
            logger.warning(
                "circuit %s: Redis unreachable (%s: %s); using this process's own state for %gs",
                self._name,
                type(exc).__name__,
                safe_message(exc),
                self._owner.retry_interval,
                extra={"breaker": self._name, "error_class": type(exc).__name__},
            )

    def _came_back(self) -> None:
        if self._down_until:
            self._down_until = 0.0
            self._local.adopt(CircuitState.CLOSED, None)
            logger.info(
                "circuit %s: Redis reachable again; using the shared state",
                self._name,
                extra={"breaker": self._name},
            )

    def _acquire_args(self) -> list[str]:
        return [self._now(), *self._acquire_tail, *self._floor()]

    def _parse_acquire(self, result: Any) -> Ticket | float:
        kind = int(result[0])
        moved = _parse_transition(result[3])
        state = CircuitState(_text(result[4]))
        opened = _text(result[5])
        restored = _text(result[6])
        if restored:
            logger.warning(
                "circuit %s: the shared state came back %s; restored it as %s (opened at %s)",
                self._name,
                restored,
                state if moved is None else moved[0],
                opened,
                extra={"breaker": self._name, "shared_state": restored, "new_state": str(state)},
            )
        self._know(state, float(opened) if opened else None)
        if moved is not None:
            self._observe_move(moved[0], moved[1])
        self._observe(state)
        if kind == 0:
            return float(_text(result[1]))
        generation = int(_text(result[1]))
        if kind == 1:
            quiet = self._quiet_ok and _text(result[2]) == "0"
            return Ticket(generation, False, None, shared=True, quiet=quiet)
        return Ticket(generation, True, _text(result[2]), shared=True)

    def _record_args(
        self, ticket: Ticket, outcome: Outcome, failure: LastFailure | None
    ) -> list[str]:
        word = "abandon" if outcome is None else ("ok" if outcome else "fail")
        return [
            self._now(),
            str(ticket.generation),
            "1" if ticket.probe else "0",
            str(ticket.lease or ""),
            word,
            *self._record_config,
            failure.type if failure else "",
            failure.message if failure else "",
            str(self._owner.key_ttl),
            *self._shown_config,
        ]

    def _recorded(self, moved: Any) -> None:
        transition = _parse_transition(moved)
        if transition is not None:
            old, new, opened = transition
            self._know(new, opened)
            self._observe_move(old, new)

    def _was_reset(self, old: Any) -> None:
        self._observe_move(CircuitState(_text(old)), CircuitState.CLOSED)

    def _queue_status(self, pipe: Any) -> Any:
        """Queue the reads :meth:`_status_from` takes, in its argument order."""
        pipe.hgetall(self.key)
        pipe.hgetall(self._keys3[2])
        pipe.zrange(self._keys3[1], 0, -1, withscores=True)
        pipe.time()
        return pipe

    def _local_status(self, name: str) -> BreakerStatus:
        status = self._local.status(name)
        self._observe(status.state)
        return status

    def _status_from(self, raw: Any, window: Any, probes: Any, server_time: Any) -> BreakerStatus:
        fields: Mapping[str, str] = {_text(k): _text(v) for k, v in (raw or {}).items()}
        if self._clock is SYSTEM_CLOCK:
            now = int(server_time[0]) + int(server_time[1]) / 1_000_000
        else:
            now = self._clock.time()
        config = self._config
        floor, floor_at, mode = self._floor()
        stored = fields.get("state")
        if floor and (stored is None or (mode == "closed" and stored == "closed")):
            # What the next call will find: the state this process knows, written back.
            fields = {**fields, "state": floor, "opened_at": floor_at, "successes": "0"}
            probes = ()
        state = CircuitState(fields.get("state", "closed"))
        calls = failures = 0
        if config.failure_rate_threshold is not None:
            index = int(now // (config.window / 10))
            for key, value in (window or {}).items():
                field = _text(key)
                if int(float(field[2:])) <= index - 10:
                    continue
                if field.startswith("c:"):
                    calls += int(_text(value))
                else:
                    failures += int(_text(value))
        live = [float(score) for _, score in (probes or []) if float(score) > now]
        opened = float(fields["opened_at"]) if "opened_at" in fields else None
        next_probe: float | None = None
        if state is CircuitState.OPEN and opened is not None:
            next_probe = max(now, opened + config.recovery_timeout)
        elif state is CircuitState.HALF_OPEN:
            full = len(live) >= config.half_open_max_calls
            next_probe = min(live) if full else now
        last = None
        if "last_failure_type" in fields:
            last = LastFailure(
                fields["last_failure_type"],
                fields.get("last_failure_message", ""),
                datetime.fromtimestamp(float(fields.get("last_failure_at", now)), UTC),
            )
        self._know(state, opened)
        self._observe(state)
        return BreakerStatus(
            name=self._name,
            state=state,
            backend=self.backend,
            failures=int(fields.get("failures", 0)),
            successes=int(fields.get("successes", 0)),
            window_calls=calls,
            window_failures=failures,
            probes_in_flight=len(live),
            rejected=int(fields.get("rejected", 0)),
            last_failure=last,
            opened_at=None if opened is None else datetime.fromtimestamp(opened, UTC),
            next_probe_at=None if next_probe is None else datetime.fromtimestamp(next_probe, UTC),
            config=config,
        )

    # -- sync -----------------------------------------------------------------------------------

    def acquire(self) -> Ticket | float:
        if self._local_mode():
            return self._local.acquire()
        try:
            result = self._owner.script("acquire")(keys=self._keys2, args=self._acquire_args())
        except self._errors as exc:
            self._went_down(exc)
            return self._local.acquire()
        self._came_back()
        return self._parse_acquire(result)

    def record(self, ticket: Ticket, outcome: Outcome, failure: LastFailure | None) -> None:
        if not ticket.shared:
            self._local.record(ticket, outcome, failure)
            return
        if (outcome is True and ticket.quiet) or (outcome is None and not ticket.probe):
            return  # changes nothing shared: no round trip
        try:
            moved = self._owner.script("record")(
                keys=self._keys3, args=self._record_args(ticket, outcome, failure)
            )
        except self._errors as exc:
            self._went_down(exc)
            return
        self._recorded(moved)

    def status(self, name: str) -> BreakerStatus:
        if self._local_mode():
            return self._local_status(name)  # what the call path uses until it retries Redis
        try:
            replies = self._queue_status(self._owner.client().pipeline(transaction=False)).execute()
        except self._errors as exc:
            self._went_down(exc)
            return self._local_status(name)
        return self._status_from(*replies)

    def reset(self) -> None:
        self._local.adopt(CircuitState.CLOSED, None)
        self._opened = None
        try:
            old = self._owner.script("reset")(keys=self._keys3, args=[str(self._owner.key_ttl)])
        except self._errors as exc:
            self._went_down(exc)
            self._observe(CircuitState.CLOSED)
            return
        self._was_reset(old)

    # -- async ----------------------------------------------------------------------------------

    async def acquire_async(self) -> Ticket | float:
        if self._local_mode():
            return self._local.acquire()
        try:
            script = self._owner.async_script("acquire")
            result = await script(keys=self._keys2, args=self._acquire_args())
        except self._errors as exc:
            self._went_down(exc)
            return self._local.acquire()
        self._came_back()
        return self._parse_acquire(result)

    async def record_async(
        self, ticket: Ticket, outcome: Outcome, failure: LastFailure | None
    ) -> None:
        if not ticket.shared:
            self._local.record(ticket, outcome, failure)
            return
        if (outcome is True and ticket.quiet) or (outcome is None and not ticket.probe):
            return  # changes nothing shared: no round trip
        try:
            script = self._owner.async_script("record")
            moved = await script(keys=self._keys3, args=self._record_args(ticket, outcome, failure))
        except self._errors as exc:
            self._went_down(exc)
            return
        self._recorded(moved)

    async def status_async(self, name: str) -> BreakerStatus:
        if self._local_mode():
            return self._local_status(name)
        try:
            pipe = self._owner.async_client().pipeline(transaction=False)
            replies = await self._queue_status(pipe).execute()
        except self._errors as exc:
            self._went_down(exc)
            return self._local_status(name)
        return self._status_from(*replies)

    async def reset_async(self) -> None:
        self._local.adopt(CircuitState.CLOSED, None)
        self._opened = None
        try:
            script = self._owner.async_script("reset")
            old = await script(keys=self._keys3, args=[str(self._owner.key_ttl)])
        except self._errors as exc:
            self._went_down(exc)
            self._observe(CircuitState.CLOSED)
            return
        self._was_reset(old)
