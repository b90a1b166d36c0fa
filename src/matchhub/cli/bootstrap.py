"""``matchhub init`` and the files the operator hands out: the bootstrap of a hub's state
folder. It composes the domains (keys, the registry, the catalogue, the audit log), so it lives
above them."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect

from matchhub.audit import service as audit
from matchhub.catalogue import service as catalogue
from matchhub.keystore import pki
from matchhub.keystore.material import Secret, audit_key_pem, load_key_material
from matchhub.kit.db import make_engine, make_sessionmaker, session_scope
from matchhub.kit.errors import OperatorError
from matchhub.kit.migrate import upgrade
from matchhub.kit.settings import Settings, StatePaths


def initialise(settings: Settings, *, demo: bool = False) -> None:
    """Database (migrated), hub CA, server certificate, broker key, audit keys.

    Everything is written to a temporary sibling folder and renamed into place at the end, so a
    failure half-way leaves no half-made state folder behind. Refuses to overwrite anything.
    """
    home = settings.home
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise OperatorError(f"{home} already holds state; refusing to overwrite it")
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = home.parent / f".{home.name}.init-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    try:
        _write_material(StatePaths(staging), settings)
        if demo:
            (staging / "DEMO").write_text(
                "Made by `matchhub demo`: demo keys, never for production.\n"
            )
        url = settings.database_url or f"sqlite:///{(staging / 'matchhub.db').resolve()}"
        keys = audit.keys_from(load_key_material(StatePaths(staging)), settings.hub_name)
        _migrate_fresh(url, keys, settings)
        if home.exists():
            home.rmdir()
        os.replace(staging, home)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_material(paths: StatePaths, settings: Settings) -> None:
    ca = pki.create_ca(settings.hub_name)
    server = pki.issue_server(ca, settings.hub_name, settings.server_names)
    pki.write_secret(paths.ca_key, pki.key_pem(ca.key))
    pki.write_public(paths.ca_cert, pki.cert_pem(ca.certificate))
    pki.write_secret(paths.server_key, pki.key_pem(server.key))
    pki.write_public(paths.server_cert, pki.cert_pem(server.certificate))
    pki.write_public(paths.crl, pki.crl_pem(pki.build_crl(ca, [])))
    pki.write_secret(paths.broker_key, Secret.generate("broker-key").dumps())
    pki.write_secret(paths.audit_subject_key, Secret.generate("audit-subject-key").dumps())
    private, public = audit_key_pem(Ed25519PrivateKey.generate())
    pki.write_secret(paths.audit_signing_key, private)
    pki.write_public(paths.audit_public_key, public)


def _migrate_fresh(url: str, keys: audit.AuditKeys, settings: Settings) -> None:
    engine = make_engine(url)
    try:
        if inspect(engine).has_table("alembic_version"):
            raise OperatorError(
                "the database already holds a matchhub schema; refusing to initialise over it "
                "(use `matchhub db upgrade` to migrate an existing one)"
            )
        upgrade(engine)
        with session_scope(make_sessionmaker(engine)) as session:
            catalogue.seed_defaults(session)
            audit.record_admin(
                session,
                keys,
                "hub.init",
                hub=settings.hub_name,
                server_names=list(settings.server_names),
                audit_verifier_key=keys.verifier_key,
            )
            # A first signed checkpoint, so a witness has one to keep from the start (the
            # checkpoint route serves signed ones, never signs for a request).
            audit.checkpoint(session, keys, fresh=True)
    finally:
        engine.dispose()


def write_agency_files(out: Path, code: str, issued: pki.Issued, ca_pem: bytes) -> list[Path]:
    """The agency's certificate, its private key (0600) and the CA certificate, in ``out``."""
    files = [out / f"{code}.pem", out / f"{code}-key.pem", out / "ca.pem"]
    clashes = [str(f) for f in files[:2] if f.exists()]
    if clashes:
        raise OperatorError(f"refusing to overwrite {', '.join(clashes)}")
    written: list[Path] = []
    try:
        pki.write_secret(files[1], pki.key_pem(issued.key))
        written.append(files[1])
        pki.write_public(files[0], pki.cert_pem(issued.certificate))
        written.append(files[0])
        pki.write_public(files[2], ca_pem, replace=True)
        written.append(files[2])
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return files
