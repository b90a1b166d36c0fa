"""The process's lookup view keeper, renewed when the database becomes another history.

After a restore (kit/epoch.py) snapshot ids are issued again with other rows, so the arrays a
keeper holds by id cannot be carried over: a new keeper loads everything afresh, without a
restart. Lookups read SQL until it is current; answers from the old keeper's view meanwhile
are refused at the audit commit, because a view generation never repeats (migration 0013).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from matchhub.lookups.inmemory import HubView
from matchhub.lookups.keeper import ViewKeeper


class Views:
    def __init__(self, make: Callable[[], ViewKeeper]) -> None:
        self._make = make
        self._keeper = make()
        self.renewals = 0

    def renew(self) -> None:
        """A fresh keeper takes over now; the old one stops in the background (it may be
        waiting for a connection this very call holds up)."""
        old, self._keeper = self._keeper, self._make()
        self.renewals += 1
        self._keeper.start()
        threading.Thread(target=old.stop, name="lookup-view-stop", daemon=True).start()

    def current(self) -> HubView | None:
        return self._keeper.current()

    def outdated(self, generation: int) -> None:
        self._keeper.outdated(generation)

    def check_soon(self) -> None:
        self._keeper.check_soon()

    def status(self) -> dict[str, str]:
        return self._keeper.status()

    def generation(self) -> int:
        return self._keeper.generation()

    def start(self) -> None:
        self._keeper.start()

    def stop(self) -> None:
        self._keeper.stop()
