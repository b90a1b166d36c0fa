"""The lookup view's keeper (lookups/keeper.py) shares its view with the event loop and the
audit writer: news of a newer generation that arrives while a view loads is not lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from matchhub.kit.db import make_engine
from matchhub.lookups.inmemory import HubView
from matchhub.lookups.keeper import ViewKeeper
from matchhub.protocol.kinds import AgencyKind
from matchhub.uploads.segments import SegmentStore
from tests.conftest import Hub


@pytest.fixture
def keeper(hub: Hub) -> Iterator[ViewKeeper]:
    engine = make_engine(hub.settings.sqlalchemy_url, read_only=True)
    # Not started: the test drives refresh() itself, as the keeper's thread would.
    yield ViewKeeper(engine, SegmentStore(hub.paths.segments), max_rows=1000, poll_seconds=3600)
    engine.dispose()


def test_a_view_loaded_while_the_writer_saw_a_newer_generation_is_not_served(
    hub: Hub, keeper: ViewKeeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper.refresh()
    first = keeper.current()
    assert first is not None
    assert keeper.status() == {"state": "current"}

    hub.add_agency("molsa", AgencyKind.welfare)  # the database moves on
    load = keeper._load

    def load_meanwhile() -> tuple[int, HubView | None]:
        generation, view = load()
        # While this load ran, the audit writer found the database further still (the
        # change committed after the load's read), and said so from its own thread.
        hub.add_agency("auditor", AgencyKind.auditor)
        keeper.outdated(keeper.generation())
        return generation, view

    monkeypatch.setattr(keeper, "_load", load_meanwhile)
    keeper.refresh()
    assert keeper.current() is None  # the loaded view is already behind
    assert keeper.status() == {"state": "catching_up"}

    monkeypatch.setattr(keeper, "_load", load)
    keeper.refresh()
    current = keeper.current()
    assert current is not None
    assert current.generation == keeper.generation() > first.generation


def test_news_of_the_generation_the_view_holds_changes_nothing(keeper: ViewKeeper) -> None:
    keeper.refresh()
    view = keeper.current()
    assert view is not None
    keeper.outdated(view.generation)
    assert keeper.current() is view
