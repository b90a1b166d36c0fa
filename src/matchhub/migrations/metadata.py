"""Every domain's ORM models, imported in one place so the metadata is complete (Alembic's
autogenerate and the models-versus-migrations check read it)."""

from matchhub.audit.models import AuditCheckpoint, AuditEntry, AuditState, audit_subjects
from matchhub.cases.models import Case, CaseEvent, CaseFlag, CaseNoticePeriod, FeedbackCount
from matchhub.catalogue.models import Flag, Grant, Purpose
from matchhub.fleet.models import BrokerProcess
from matchhub.identity.models import Agency, Certificate
from matchhub.jobs.models import MatchJob, match_result_chunks
from matchhub.keystore.models import MatchingKeyVersion
from matchhub.kit.models import Base
from matchhub.lookups.models import ViewGeneration
from matchhub.uploads.models import Snapshot, Upload, UploadChunk, roster_rows, snapshot_rows

__all__ = [
    "Agency",
    "AuditCheckpoint",
    "AuditEntry",
    "AuditState",
    "Base",
    "BrokerProcess",
    "Case",
    "CaseEvent",
    "CaseFlag",
    "CaseNoticePeriod",
    "Certificate",
    "FeedbackCount",
    "Flag",
    "Grant",
    "MatchJob",
    "MatchingKeyVersion",
    "Purpose",
    "Snapshot",
    "Upload",
    "UploadChunk",
    "ViewGeneration",
    "audit_subjects",
    "match_result_chunks",
    "roster_rows",
    "snapshot_rows",
]
