"""The desk's home folder and its settings file, ``desk.toml``.

``matchhub-desk init`` makes the home: it *copies* the ministry's client certificate and key,
the hub's CA certificate, the matching key and the connector definition into it (secrets mode
0600, the folders 0700), so the desk never depends on where they were handed over and the
originals can be put away. The roster extract is copied into each registered roster's folder
(``rosters/<version>/``). Nothing here is ever shown on a page or written to a log.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from matchhub.agency.connector.client import AgencyCredentials

CONFIG_FILE = "desk.toml"
CONFIG_FORMAT = "matchhub-desk/1"
DATABASE_URL_ENV = "MATCHHUB_DESK_DATABASE_URL"


class ConfigError(Exception):
    """The home folder or its settings file is missing or malformed: one line to fix it."""


@dataclass(frozen=True)
class Settings:
    """The desk's tunable settings (``[settings]`` in desk.toml); every one has a default."""

    lockout_failures: int = 5
    """Failed sign-ins in a row that lock an account..."""
    lockout_minutes: int = 15
    """...for this long."""
    idle_minutes: int = 20
    """A session unused this long is over: sign in again."""
    session_hours: int = 10
    """The longest a session lasts, however busy (a working day)."""
    max_extract_mb: int = 2048
    """The largest roster extract accepted through the page."""
    max_rejected: float = 0.05
    """Refuse a roster extract with more than this share of rows rejected (and more than 10):
    a roster replaces the last one, and a broken file would drop the ministry's people."""
    lookup_max_ids: int = 20
    """National IDs in one case lookup."""
    rosters_kept: int = 3
    """Registered rosters kept, to resolve the results of matches that ran on earlier ones."""
    secure_cookies: bool = False
    """Mark cookies Secure and send HSTS: set it when a TLS reverse proxy serves the desk
    (``serve --certificate`` sets it by itself)."""
    # The auditor's console (docs/desk.md, "The auditor's console").
    audit_heavy_factor: float = 3.0
    """An end user is a heavy user above this many times their peers' median of people
    looked up..."""
    audit_heavy_minimum: int = 20
    """...and with at least this many."""
    audit_office_start: int = 8
    """Office hours, local time (Asia/Baghdad), Sunday to Thursday: from this hour..."""
    audit_office_end: int = 15
    """...to this one (exclusive); lookups outside them are listed."""
    audit_many_staff: int = 3
    """A person looked up by at least this many different staff members is listed."""
    audit_scan_max: int = 200_000
    """Entries read for one anomaly analysis or report (the page says when a period has more)."""
    audit_period_days: int = 366
    """The longest period an analysis or a report covers."""

    @classmethod
    def from_table(cls, table: dict[str, Any], path: Path) -> Settings:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in table.items():
            if name not in known:
                raise ConfigError(f"{path}: [settings] {name}: unknown setting (a typo?)")
            default = getattr(cls, name)
            if type(value) is not type(default) and not (
                isinstance(default, float) and isinstance(value, int)
            ):
                raise ConfigError(
                    f"{path}: [settings] {name}: expected {type(default).__name__}, "
                    f"got {type(value).__name__}"
                )
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{path}: [settings] {name}: must not be negative")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class DeskConfig:
    home: Path
    broker: str
    code: str
    kind: str
    database_url: str
    desk_id: str
    settings: Settings = field(default_factory=Settings)

    # --- where things live in the home folder ---------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def credentials_dir(self) -> Path:
        return self.home / "credentials"

    @property
    def credentials(self) -> AgencyCredentials:
        return AgencyCredentials.in_folder(self.credentials_dir, self.code)

    @property
    def matching_key(self) -> Path:
        return self.home / "matching-key.json"

    @property
    def definition(self) -> Path:
        return self.home / "definition.toml"

    @property
    def extract(self) -> Path:
        """The roster extract last registered (a copy, mode 0600): registered again from here
        when the page's "register the current file" is used."""
        return self.home / "extract.csv"

    @property
    def rosters(self) -> Path:
        return self.home / "rosters"

    @property
    def lists(self) -> Path:
        return self.home / "lists"

    @property
    def incoming(self) -> Path:
        """Where an extract sent through the page is written while it is checked."""
        return self.home / "incoming"

    @property
    def witness(self) -> Path:
        return self.home / "witness"

    @property
    def audit_key(self) -> Path:
        """The broker log's verifier key, pinned at ``init --audit-key`` (else on first use)."""
        return self.home / "audit-verifier.key"

    @property
    def cookie_name(self) -> str:
        """This desk's session cookie: named after the desk, so two desks on one host never
        overwrite each other's, and a cookie of another desk is simply not this desk's."""
        return f"{'__Host-' if self.settings.secure_cookies else ''}desk-{self.desk_id}"

    # --- reading and writing ---------------------------------------------------------------

    @classmethod
    def load(cls, home: Path) -> DeskConfig:
        path = home / CONFIG_FILE
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{home}: not a desk home (no {CONFIG_FILE}); make one with `matchhub-desk init`"
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read it: {exc}") from None
        if document.get("format") != CONFIG_FORMAT:
            raise ConfigError(f"{path}: format must be {CONFIG_FORMAT!r}")
        try:
            broker, code = str(document["broker"]), str(document["code"])
            kind = str(document.get("kind", "welfare"))
            desk_id = str(document["desk_id"])
        except KeyError as exc:
            raise ConfigError(f"{path}: {exc.args[0]}: missing (required)") from None
        url = os.environ.get(DATABASE_URL_ENV) or str(
            document.get("database_url") or f"sqlite:///{home.resolve() / 'desk.db'}"
        )
        settings = Settings.from_table(dict(document.get("settings", {})), path)
        return cls(home, broker, code, kind, url, desk_id, settings)

    def with_settings(self, **changes: Any) -> DeskConfig:
        return replace(self, settings=replace(self.settings, **changes))

    def render(self, database_url: str | None) -> str:
        lines = [
            "# The ministry's desk (matchhub-desk). docs/desk.md explains every setting.",
            f'format = "{CONFIG_FORMAT}"',
            f'broker = "{self.broker}"',
            f'code = "{self.code}"',
            f'kind = "{self.kind}"',
            f'desk_id = "{self.desk_id}"',
        ]
        if database_url:
            lines.append(f'database_url = "{database_url}"')
        lines += ["", "[settings]"]
        lines += [f"# {f.name} = {_toml(getattr(self.settings, f.name))}" for f in fields(Settings)]
        return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
