"""Every domain's ORM models, imported in one place so the metadata is complete (Alembic's
autogenerate and the models-versus-migrations check read it)."""

from matchhub.identity.models import Agency, Certificate
from matchhub.keystore.models import MatchingKeyVersion
from matchhub.kit.models import Base

__all__ = ["Agency", "Base", "Certificate", "MatchingKeyVersion"]
