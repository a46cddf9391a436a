"""Events as the CloudEvents spec recommends: reverse-DNS types, an absolute URI source,
checked with the CloudEvents SDK; the names of 0.1 still subscribe, with a warning."""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import urlparse

import pytest
from cloudevents.core.formats.json import JSONFormat

from magcfg.runtime.events import (
    EVENT_TYPES,
    RELOADED,
    RUNTIME_SOURCE,
    WATCH_SOURCE,
    EventBus,
    make_event,
)


def test_events_are_cloudevents_with_recommended_type_and_source() -> None:
    for event_type in EVENT_TYPES:
        event = make_event(event_type, "prod", {"version": 1})
        # The SDK's structured-JSON reader refuses what is not a CloudEvent 1.0.
        parsed = JSONFormat().read(None, json.dumps(event))
        assert parsed.get_type().startswith("io.magflock.magcfg.config.")
        assert (parsed.get_source(), parsed.get_subject()) == (RUNTIME_SOURCE, "prod")
    for source in (RUNTIME_SOURCE, WATCH_SOURCE):
        assert urlparse(source).scheme == "urn"  # absolute, not a relative path


def test_old_type_names_still_subscribe_with_a_warning() -> None:
    bus = EventBus()
    seen: list[dict[str, Any]] = []
    with pytest.warns(DeprecationWarning, match=re.escape(
            "'config.reloaded' is now 'io.magflock.magcfg.config.reloaded'")):
        bus.subscribe("config.reloaded", seen.append)
    bus.publish(make_event(RELOADED, "prod", {}))
    assert [e["type"] for e in seen] == [RELOADED]
    with pytest.raises(ValueError, match=re.escape("unknown event type 'config.reload'")):
        bus.subscribe("config.reload", seen.append)


class _Client:
    """A subscriber object whose repr shows what it holds, as many clients' do."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"_Client(token={self.token!r})"

    def __call__(self, event: dict[str, Any]) -> None:
        raise RuntimeError("down")


def test_a_failing_subscriber_is_logged_by_name_never_by_what_it_holds(
        caplog: pytest.LogCaptureFixture) -> None:
    canary = "s3cret-canary-subscriber"

    def notify(event: dict[str, Any], password: str) -> None:
        raise RuntimeError("down")

    bus = EventBus()
    bus.subscribe(RELOADED, functools.partial(notify, password=canary))
    bus.subscribe(RELOADED, _Client(canary))
    bus.publish(make_event(RELOADED, "prod", {}))
    assert bus.failures == 2
    assert canary not in caplog.text
    assert "subscriber test_a_failing_subscriber_is_logged_by_name_never_by_what_it_holds." \
           "<locals>.notify failed on io.magflock.magcfg.config.reloaded: RuntimeError" \
        in caplog.text
    assert "subscriber _Client failed on" in caplog.text
