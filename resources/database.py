"""The application database (SQLite by default, PostgreSQL via DATABASE_URL) as a Dagster resource."""

from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from surveillance_pipeline.config import load_settings
from surveillance_pipeline.storage.database import Database


class DatabaseResource(ConfigurableResource):
    """A pooled connection to the application store, migrated to the newest schema before use."""

    url: str | None = None  # None: the configured database (config/surveillance.yaml, DATABASE_URL)
    pool_size: int = 5

    _database: Database | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self._database = Database(self.url or load_settings().database_url, pool_size=self.pool_size)
        self._database.migrate()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._database is not None:
            self._database.dispose()

    def get(self) -> Database:
        if self._database is None:  # used outside a run (e.g. a sensor test)
            self.setup_for_execution(None)  # type: ignore[arg-type]
        return self._database
