"""Recovery: retry, circuit breakers (shared through Redis if wanted), fallback and
failover, timeouts, ``with_error_recovery``, partial success, transactions and chaos.

Each tool is wired to the error model: only what :func:`errorkit.classify` calls retriable
is retried, only what says a dependency is failing trips a breaker, and what finally fails
is reported to capture once.
"""

from __future__ import annotations

from errorkit.resilience.batch import (
    BatchError,
    BatchResult,
    ItemFailure,
    ItemSuccess,
    run_batch,
    run_batch_async,
)
from errorkit.resilience.breaker import (
    BreakerBackend,
    BreakerConfig,
    BreakerStatus,
    CircuitBreaker,
    CircuitState,
    LastFailure,
    MemoryBackend,
    OpenError,
    Permit,
    TransitionListener,
)
from errorkit.resilience.breaker_redis import RedisBackend, SharedBreakerState
from errorkit.resilience.chaos import Chaos, chaos_enabled, disable_chaos, enable_chaos, set_chaos
from errorkit.resilience.clock import (
    SYSTEM_CLOCK,
    Clock,
    ManualClock,
    SystemClock,
    is_testing,
    no_waits,
    set_testing,
)
from errorkit.resilience.fallback import (
    FallbackChain,
    FallbackEvent,
    FallbackExhaustedError,
    FallbackListener,
    FallbackResult,
    FallbackStep,
    Step,
    add_fallback_listener,
    fallback_chain,
    remove_fallback_listener,
    step,
    with_fallback,
)
from errorkit.resilience.recovery import with_error_recovery
from errorkit.resilience.registry import (
    BreakerRegistry,
    add_breaker_listener,
    breaker_statuses,
    circuit_breaker,
    configure_breakers,
    default_registry,
    get_breaker,
    remove_breaker_listener,
    reset_all_breakers,
    reset_breaker,
)
from errorkit.resilience.retrying import (
    Attempt,
    Jitter,
    RetryEvent,
    RetryListener,
    RetryPolicy,
    add_retry_listener,
    remove_retry_listener,
    retry,
)
from errorkit.resilience.timeouts import Timeout, configure_timeout_pool, timeout
from errorkit.resilience.transactions import (
    DatabaseConflictError,
    transaction,
    transaction_async,
)

__all__ = [
    "SYSTEM_CLOCK",
    "Attempt",
    "BatchError",
    "BatchResult",
    "BreakerBackend",
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerStatus",
    "Chaos",
    "CircuitBreaker",
    "CircuitState",
    "Clock",
    "DatabaseConflictError",
    "FallbackChain",
    "FallbackEvent",
    "FallbackExhaustedError",
    "FallbackListener",
    "FallbackResult",
    "FallbackStep",
    "ItemFailure",
    "ItemSuccess",
    "Jitter",
    "LastFailure",
    "ManualClock",
    "MemoryBackend",
    "OpenError",
    "Permit",
    "RedisBackend",
    "RetryEvent",
    "RetryListener",
    "RetryPolicy",
    "SharedBreakerState",
    "Step",
    "SystemClock",
    "Timeout",
    "TransitionListener",
    "add_breaker_listener",
    "add_fallback_listener",
    "add_retry_listener",
    "breaker_statuses",
    "chaos_enabled",
    "circuit_breaker",
    "configure_breakers",
    "configure_timeout_pool",
    "default_registry",
    "disable_chaos",
    "enable_chaos",
    "fallback_chain",
    "get_breaker",
    "is_testing",
    "no_waits",
    "remove_breaker_listener",
    "remove_fallback_listener",
    "remove_retry_listener",
    "reset_all_breakers",
    "reset_breaker",
    "retry",
    "run_batch",
    "run_batch_async",
    "set_chaos",
    "set_testing",
    "step",
    "timeout",
    "transaction",
    "transaction_async",
    "with_error_recovery",
    "with_fallback",
]
