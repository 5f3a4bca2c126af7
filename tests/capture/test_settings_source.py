"""Every capture default is written once, in Settings; configure() and the pipeline read it."""

from __future__ import annotations

import inspect
from dataclasses import fields

from errorkit.capturing import api
from errorkit.capturing.pipeline import Pipeline
from errorkit.config import (
    DEFAULT_SETTINGS,
    Settings,
    capture_fields,
    get_settings,
)
from errorkit.testing import MemoryStore

_NOT_SETTINGS = {"scrubber", "store"}  # objects, not values a setting can hold


def test_configure_takes_every_capture_setting_and_nothing_else() -> None:
    """configure()'s keywords and the capture settings are the same list (one renamed):
    a setting added to Settings without a keyword, or the reverse, fails here."""
    keywords = set(inspect.signature(api.configure).parameters) - _NOT_SETTINGS
    named = {api.SETTING_OF.get(keyword, keyword) for keyword in keywords}
    assert named == set(capture_fields())
    assert named <= {f.name for f in fields(Settings)}


def test_configure_defaults_to_none_so_settings_decide() -> None:
    """No keyword of configure() carries a default of its own."""
    for name, parameter in inspect.signature(api.configure).parameters.items():
        assert parameter.default is None, name


def test_the_pipeline_defaults_are_the_settings_defaults() -> None:
    """Each Pipeline parameter named for a setting defaults to that setting's default."""
    parameters = inspect.signature(Pipeline).parameters
    shared = set(parameters) & {f.name for f in fields(Settings)}
    assert {"service", "environment", "queue_size", "batch_size", "flush_interval"} <= shared
    for name in shared:
        assert parameters[name].default == getattr(DEFAULT_SETTINGS, name), name


def test_configure_builds_the_pipeline_from_the_settings_in_force() -> None:
    """Values given to configure() reach the pipeline through the settings."""
    api.configure(
        store=MemoryStore(),
        service="billing",
        environment="staging",
        queue_size=7,
        batch_size=3,
        flush_interval=2.5,
        spool_dir="unused-spool",
    )
    pipeline = api._pipeline
    assert pipeline is not None
    settings = get_settings()
    assert (pipeline.service, pipeline.environment) == ("billing", "staging")
    assert (pipeline.queue_size, pipeline.batch_size) == (settings.queue_size, 3)
    assert pipeline.flush_interval == 2.5
    assert pipeline.limiter.per_minute == settings.flood_per_minute
    assert pipeline.slim_per_minute == settings.slim_per_minute
