"""The audit log's offline side through the operator's CLI: export, verify, every kind of
tampering, and one chain under concurrent appends."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.exc import DataError

from matchhub.audit.service import PendingEntry
from matchhub.keystore.material import load_key_material
from matchhub.protocol import merkle
from matchhub.protocol.checkpoint import sign_checkpoint, verify_checkpoint
from matchhub.protocol.kinds import AgencyKind
from matchhub.protocol.verify import VerificationError, verify_export
from matchhub.web.writer import AuditWriter
from tests.api.test_audit import _size
from tests.conftest import Hub, InProcessApi
from tests.fixtures.cli import OperatorCli, Ran


def _cli(operator_cli: OperatorCli, hub: Hub, *args: str) -> Ran:
    return operator_cli(
        hub.settings.home, *args, env={"MATCHHUB_DATABASE_URL": hub.settings.database_url or ""}
    )


def _verify(folder: Path, key: str, saved: str | None = None) -> str:
    try:
        verify_export(folder, key, saved)
    except VerificationError as exc:
        return str(exc)
    return "ok"


def _rewrite(folder: Path, edit: Any, signer: Ed25519PrivateKey, origin: str) -> None:
    """A forger with the real signing key: change entries, recompute leaves, re-sign."""
    lines = [json.loads(x) for x in (folder / "entries.jsonl").read_text().splitlines()]
    lines = edit(lines)
    hashes = []
    with (folder / "entries.jsonl").open("w") as f:
        for item in lines:
            item["leaf_hash"] = merkle.leaf_hash(item["body"].encode()).hex()
            hashes.append(bytes.fromhex(item["leaf_hash"]))
            f.write(json.dumps(item) + "\n")
    note = sign_checkpoint(origin, len(hashes), merkle.root(hashes), origin, signer)
    (folder / "checkpoints.jsonl").write_text(json.dumps({"size": len(hashes), "note": note}))


def test_export_verify_and_every_kind_of_tampering(
    api: InProcessApi, tmp_path: Path, operator_cli: OperatorCli
) -> None:
    hub = api.hub
    molsa = hub.add_agency("molsa", AgencyKind.welfare)
    with api.client(molsa) as client:
        for _ in range(6):
            client.get("/v1/whoami")
    export = tmp_path / "export"
    result = _cli(operator_cli, hub, "audit", "export", "--out", str(export))
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "pinned.key"
    shutil.copy(export / "verifier.key", key_file)
    key = key_file.read_text().strip()
    saved = json.loads((export / "checkpoints.jsonl").read_text().splitlines()[-1])["note"]
    ok = _cli(operator_cli, hub, "audit", "verify", "--export", str(export), "--key", str(key_file))
    assert ok.returncode == 0, ok.stderr
    assert "verified" in ok.stdout

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(export, target)
        return target

    lines = (export / "entries.jsonl").read_text().splitlines()
    edited = copy("edited")
    entry = json.loads(lines[3])
    entry["body"] = entry["body"].replace('"status":200', '"status":201')
    (edited / "entries.jsonl").write_text("\n".join([*lines[:3], json.dumps(entry), *lines[4:]]))
    assert "entry 3 was edited" in _verify(edited, key)

    tail = copy("tail")
    (tail / "entries.jsonl").write_text("\n".join(lines[:-2]) + "\n")
    assert "entries after the last one were deleted" in _verify(tail, key)

    other = Ed25519PrivateKey.generate()
    origin = verify_checkpoint(saved, key).origin
    forged = copy("other-key")
    _rewrite(forged, lambda rows: rows, other, origin)
    assert "unknown_key" in _verify(forged, key)

    signer = load_key_material(hub.paths).audit_signing_key
    rewritten = copy("rewritten")

    def edit_entry_two(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = json.loads(rows[2]["body"])
        body["agency"] = "someone-else"
        rows[2]["body"] = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return rows

    _rewrite(rewritten, edit_entry_two, signer, origin)
    assert _verify(rewritten, key) == "ok"  # re-signed with the real key, it looks fine...
    assert "history rewritten" in _verify(rewritten, key, saved)  # ...until a witness checks

    rolled = copy("rolled-back")
    _rewrite(rolled, lambda rows: rows[:4], signer, origin)
    assert "rollback" in _verify(rolled, key, saved)
    saved_file = tmp_path / "saved.note"
    saved_file.write_text(saved)
    cli = _cli(
        operator_cli,
        hub,
        "audit",
        "verify",
        "--export",
        str(rolled),
        "--key",
        str(key_file),
        "--checkpoint",
        str(saved_file),
    )
    assert cli.returncode != 0
    assert "rollback" in cli.stderr


def test_concurrent_appends_stay_one_chain(
    api: InProcessApi, tmp_path: Path, operator_cli: OperatorCli
) -> None:
    hub = api.hub
    creds = [hub.add_agency(f"agency-{n}", AgencyKind.welfare) for n in range(4)]
    errors: list[str] = []

    def hammer(n: int) -> None:
        with api.client(creds[n]) as client:
            for _ in range(15):
                if client.get("/v1/whoami").status_code != 200:
                    errors.append("status")

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    export = tmp_path / "export"
    assert _cli(operator_cli, hub, "audit", "export", "--out", str(export)).returncode == 0
    key = (export / "verifier.key").read_text().strip()
    report = verify_export(export, key)
    assert report.entries == _size(hub)
    assert report.entries >= 60


def test_the_public_key_init_writes_verifies_and_blank_lines_are_no_crash(
    api: InProcessApi, tmp_path: Path, operator_cli: OperatorCli
) -> None:
    """keys/README.md hands auditors `audit-signing-key.pub` (PEM): `audit verify --key` takes
    it as it takes the verifier key string; blank lines in an export are not a traceback, a
    malformed line is one clear line, and another PEM key does not verify."""
    hub = api.hub
    export = tmp_path / "export"
    assert _cli(operator_cli, hub, "audit", "export", "--out", str(export)).returncode == 0
    for name in ("entries.jsonl", "checkpoints.jsonl"):
        path = export / name
        path.write_text("\n" + path.read_text().replace("\n", "\n\n") + "\n  \n")
    pem = hub.paths.audit_public_key
    ok = _cli(operator_cli, hub, "audit", "verify", "--export", str(export), "--key", str(pem))
    assert ok.returncode == 0, ok.stderr
    assert "verified" in ok.stdout

    stranger = tmp_path / "other.pub"
    stranger.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    assert "unknown_key" in _verify(export, stranger.read_text())

    with (export / "checkpoints.jsonl").open("a") as f:
        f.write("{not json\n")
    bad = _cli(operator_cli, hub, "audit", "verify", "--export", str(export), "--key", str(pem))
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert "checkpoints.jsonl line" in bad.stderr


def test_a_key_that_is_not_one_is_blamed_not_the_log_and_nothing_waits_on_a_fifo(
    api: InProcessApi, tmp_path: Path, operator_cli: OperatorCli
) -> None:
    """A truncated PEM, a garbled key line, a FIFO or a huge file given as `--key`: exit 2,
    one line that names the key and says the log was not checked. A FIFO as the export's
    entries is refused at once rather than waited on."""
    hub = api.hub
    export = tmp_path / "export"
    assert _cli(operator_cli, hub, "audit", "export", "--out", str(export)).returncode == 0
    pem = hub.paths.audit_public_key.read_text()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge"
    huge.write_bytes(b"a" * (1 << 20))
    for name, content in (
        ("truncated.pub", pem[: len(pem) // 2]),
        ("garbled.vkey", "audit+deadbeef+not-base64"),
        ("fifo", None),
        ("huge", None),
        ("missing", None),
    ):
        key = tmp_path / name
        if content is not None:
            key.write_text(content)
        ran = _cli(operator_cli, hub, "audit", "verify", "--export", str(export), "--key", str(key))
        assert ran.returncode == 2, (name, ran.stderr)
        assert "the key is unusable, so the log was not checked" in ran.stderr, name
        assert "does NOT verify" not in ran.stderr
        assert "Traceback" not in ran.stderr
    key = str(hub.paths.audit_public_key)
    for missing in (tmp_path / "nowhere", hub.paths.audit_public_key):  # none, or a file
        ran = _cli(operator_cli, hub, "audit", "verify", "--export", str(missing), "--key", key)
        assert ran.returncode == 2, ran.stderr
        assert "is not an export, so nothing was checked" in ran.stderr
    (export / "entries.jsonl").unlink()
    os.mkfifo(export / "entries.jsonl")
    key = str(hub.paths.audit_public_key)
    ran = _cli(operator_cli, hub, "audit", "verify", "--export", str(export), "--key", key)
    assert ran.returncode == 1, ran.stderr
    assert "not a regular file" in ran.stderr


def test_an_unwritable_entry_fails_alone_and_the_chain_verifies(
    api: InProcessApi, tmp_path: Path, operator_cli: OperatorCli
) -> None:
    """A batch of the group-commit writer committed or failed whole: one entry the log cannot
    hold (no UTF-8; on PostgreSQL, a NUL in a column) answered every request of its batch 503.
    Now the batch's entries are appended one at a time, and only that entry's request fails."""
    hub = api.hub
    writer = AuditWriter(api.app.state.sessionmaker, api.app.state.audit_keys)
    postgresql = bool(hub.settings.database_url)
    pending = [
        PendingEntry("request", {"n": 0}),
        PendingEntry("request", {"n": 1, "note": "\ud800"}),  # no canonical UTF-8
        PendingEntry("request", {"n": 2}),
        PendingEntry("request", {"n": 3}, purpose="\x00"),  # PostgreSQL's text refuses it
        PendingEntry("request", {"n": 4}),
    ]

    async def one_batch() -> list[int | BaseException]:
        waits = [asyncio.ensure_future(writer.record(entry)) for entry in pending]
        await asyncio.sleep(0)  # every entry queued before the writer takes the first
        writer.start()
        return await asyncio.gather(*waits, return_exceptions=True)

    before = _size(hub)
    try:
        outcomes = api.portal.call(one_batch)
    finally:
        writer.stop()
    assert isinstance(outcomes[1], UnicodeEncodeError)
    assert isinstance(outcomes[3], DataError) if postgresql else outcomes[3] == before + 2
    written = [o for o in outcomes if isinstance(o, int)]
    assert written == list(range(before, before + len(written)))
    assert len(written) == (3 if postgresql else 4)
    with api.client(hub.add_agency("molsa", AgencyKind.welfare)) as client:
        assert client.get("/v1/whoami").status_code == 200  # the app's own writer, unharmed
    export = tmp_path / "export"
    assert _cli(operator_cli, hub, "audit", "export", "--out", str(export)).returncode == 0
    key = (export / "verifier.key").read_text().strip()
    assert verify_export(export, key).entries == _size(hub) == before + len(written) + 1
