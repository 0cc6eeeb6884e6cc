"""Parquet files per asset and partition for intermediate polars frames, written atomically."""

import os
from pathlib import Path

import polars as pl
from dagster import ConfigurableIOManager, InputContext, OutputContext

from surveillance_pipeline.config import load_settings


class PolarsParquetIOManager(ConfigurableIOManager):
    """Stores a polars DataFrame as `<base_dir>/<asset key>/<partition>.parquet` (or `data.parquet`)."""

    base_dir: str | None = None  # None: the configured paths.warehouse_dir

    def _root(self) -> Path:
        if self.base_dir:
            return Path(self.base_dir)
        settings = load_settings()
        return settings.resolve(settings.paths.warehouse_dir)

    def _path(self, context: InputContext | OutputContext, partition_key: str | None) -> Path:
        return self._root().joinpath(*context.asset_key.path) / f"{partition_key or 'data'}.parquet"

    def handle_output(self, context: OutputContext, obj: pl.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a polars DataFrame, got {type(obj).__name__}")
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = self._path(context, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        obj.write_parquet(tmp)
        os.replace(tmp, path)  # readers never see half a file; a re-run replaces the partition
        context.add_output_metadata({"path": str(path), "rows": obj.height})

    def load_input(self, context: InputContext) -> pl.DataFrame:
        partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
        paths = [self._path(context, key) for key in partitions]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise FileNotFoundError(f"{context.asset_key.to_user_string()}: not materialised yet ({shown})")
        return pl.concat([pl.read_parquet(p) for p in paths], how="vertical")
