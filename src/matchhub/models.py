"""Every domain's ORM models, imported in one place so the metadata is complete (Alembic's
autogenerate and the models-versus-migrations check read it)."""

from matchhub.catalogue.models import Flag, Grant, Purpose
from matchhub.identity.models import Agency, Certificate
from matchhub.keystore.models import MatchingKeyVersion
from matchhub.kit.models import Base
from matchhub.uploads.models import Snapshot, Upload, UploadChunk, snapshot_rows

__all__ = [
    "Agency",
    "Base",
    "Certificate",
    "Flag",
    "Grant",
    "MatchingKeyVersion",
    "Purpose",
    "Snapshot",
    "Upload",
    "UploadChunk",
    "snapshot_rows",
]
