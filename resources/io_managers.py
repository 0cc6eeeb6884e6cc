"""Parquet files per asset and partition for the frames between assets, written atomically.

An asset may return a polars DataFrame or a LazyFrame (streamed to the file without loading it whole);
an input annotated as `pl.LazyFrame` is given a scan of the files instead of loaded rows.
"""
import os
from pathlib import Path

import polars as pl
from dagster import ConfigurableIOManager, InputContext, OutputContext

from surveillance_pipeline.config import load_settings


PARTITION_COLUMN = "partition_column"  # output metadata: the date column that splits a partition range
ALLOW_MISSING = "allow_missing_partitions"  # input metadata: a look-back may start before the data


class PolarsParquetIOManager(ConfigurableIOManager):
    """Stores frames as `<base_dir>/<asset key>/<partition>.parquet` (or `data.parquet` when unpartitioned)."""

    base_dir: str | None = None  # None: the configured paths.warehouse_dir

    def _root(self) -> Path:
        if self.base_dir:
            return Path(self.base_dir)
        settings = load_settings()
        return settings.resolve(settings.paths.warehouse_dir)

    def _path(self, context: InputContext | OutputContext, partition_key: str | None) -> Path:
        return self._root().joinpath(*context.asset_key.path) / f"{partition_key or 'data'}.parquet"

    def handle_output(self, context: OutputContext, obj: pl.DataFrame | pl.LazyFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, (pl.DataFrame, pl.LazyFrame)):
            raise TypeError(f"{context.asset_key.to_user_string()}: expected a polars frame, got {type(obj).__name__}")
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        if len(keys) == 1:
            rows = self._write(obj, self._path(context, keys[0]))
            context.add_output_metadata({"path": str(self._path(context, keys[0])), "rows": rows})
            return
        # A single run over a partition range: the frame's partition column says which rows go where.
        column = (context.definition_metadata or {}).get(PARTITION_COLUMN)
        if column is None:
            raise ValueError(f"{context.asset_key.to_user_string()}: a multi-partition output needs the "
                             f"'{PARTITION_COLUMN}' metadata naming its date column")
        frame = obj.collect() if isinstance(obj, pl.LazyFrame) else obj
        rows = 0
        for key in keys:
            rows += self._write(frame.filter(pl.col(column).cast(pl.String) == key), self._path(context, key))
        context.add_output_metadata({"partitions": len(keys), "rows": rows})

    def _write(self, obj: pl.DataFrame | pl.LazyFrame, path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        if isinstance(obj, pl.LazyFrame):
            obj.sink_parquet(tmp)
            rows = pl.scan_parquet(tmp).select(pl.len()).collect().item()
        else:
            obj.write_parquet(tmp)
            rows = obj.height
        os.replace(tmp, path)  # readers never see half a file; a re-run replaces the partition
        return rows

    def load_input(self, context: InputContext) -> pl.DataFrame | pl.LazyFrame:
        partitions = context.asset_partition_keys if context.has_asset_partitions else [None]
        paths = [self._path(context, key) for key in partitions]
        missing = [p for p in paths if not p.exists()]
        if missing and (context.definition_metadata or {}).get(ALLOW_MISSING):
            # Look-back inputs: days before the data began are simply absent. The newest must exist.
            missing = [p for p in missing if p == paths[-1]]
            paths = [p for p in paths if p.exists()]
        if missing:
            shown = ", ".join(map(str, missing[:3])) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise FileNotFoundError(f"{context.asset_key.to_user_string()}: not materialised yet ({shown})")
        scan = pl.scan_parquet(paths)
        return scan if context.dagster_type.typing_type is pl.LazyFrame else scan.collect()
