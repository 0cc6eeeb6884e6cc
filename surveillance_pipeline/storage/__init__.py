"""The application store: SQLAlchemy models, Alembic migrations and bulk I/O (no Dagster here)."""
from surveillance_pipeline.storage.database import Database
from surveillance_pipeline.storage.engine import alembic_config, make_engine, normalize_url, upgrade
from surveillance_pipeline.storage.models import Base

__all__ = ["Base", "Database", "alembic_config", "make_engine", "normalize_url", "upgrade"]
