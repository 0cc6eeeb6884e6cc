"""The application store: SQLAlchemy models, Alembic migrations and bulk I/O (no Dagster here)."""
from surveillance_pipeline.storage.database import Database, alembic_config, normalize_url
from surveillance_pipeline.storage.models import Base

__all__ = ["Base", "Database", "alembic_config", "normalize_url"]
