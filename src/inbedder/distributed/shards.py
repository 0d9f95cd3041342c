"""Embed parquet files on a Ray cluster into a folder of parquet files, resumably (``inbedder embed --ray``).

::

    inbedder embed --ray -m minilm --instruction "Represent the document:" -i docs/ -o vectors/
    inbedder embed --ray --ray-address ray://head:10001 --concurrency 16 --device cuda -m minilm -i s3data/ -o out/

The input (one parquet file or a folder of them, read recursively in sorted order) is cut into shards of at most
``--shard-rows`` rows (default 10000; environment ``INBEDDER_RAY_SHARD_ROWS``). Each shard becomes one output file,
``part-FFFFF-SSSSSS.parquet`` (input file number, shard number): the input rows in their order, every input column,
plus ``embedding``. Sorted by name, the output files give the input rows in input order. A shard's file is written
to a temporary name and renamed when complete, so a killed run leaves only finished files; the same command run
again skips them and computes the rest. ``_inbedder_run.json`` records the settings; a rerun with other settings
is refused.

Without ``--ray-address`` (or ``RAY_ADDRESS``) a local Ray is started for the run and stopped after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, did_you_mean, require
from .dataset import EmbedBatch, actor_pool, user_error

MANIFEST = "_inbedder_run.json"
FORMAT_VERSION = 1
SHARD_ROWS_ENV = "INBEDDER_RAY_SHARD_ROWS"
DEFAULT_SHARD_ROWS = 10_000


@dataclass(frozen=True)
class Shard:
    """Rows ``start:stop`` of the input file ``path``, written to ``name`` in the output folder."""

    path: str
    start: int
    stop: int
    name: str


def input_files(path: str | os.PathLike[str]) -> list[Path]:
    """The parquet file, or every ``*.parquet`` file under the folder (sorted; names starting with ``.``/``_``
    are skipped, as Spark and Ray write such side files)."""
    where = Path(path)
    if where.is_file():
        if where.suffix != ".parquet":
            raise InputError(f"--ray reads parquet input; {str(where)!r} is not a .parquet file")
        return [where]
    if not where.is_dir():
        raise InputError(f"input {str(where)!r} does not exist")
    files = sorted(p for p in where.rglob("*.parquet")
                   if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(where).parts))
    if not files:
        raise InputError(f"no .parquet files in the folder {str(where)!r}")
    return files


def plan(files: list[Path], shard_rows: int, columns: list[str]) -> tuple[list[Shard], list[dict[str, Any]]]:
    """Cut the files into shards; check that every file has the needed columns. Also returns what identifies
    the input (path, rows, bytes of each file) for the run's manifest."""
    import pyarrow.parquet as pq

    shards, about = [], []
    for f, path in enumerate(files):
        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise InputError(f"cannot read {str(path)!r} as parquet: {exc}") from exc
        names = meta.schema.to_arrow_schema().names
        for column in columns:
            if column not in names:
                raise InputError(f"{str(path)!r} has no column {column!r} (columns: {', '.join(names)})."
                                 f"{did_you_mean(column, names)} Choose one with --text-column / "
                                 "--instruction-column.")
        rows = meta.num_rows
        about.append({"path": str(path.resolve()), "rows": rows, "bytes": path.stat().st_size})
        for s, start in enumerate(range(0, rows, shard_rows)):
            shards.append(Shard(str(path), start, min(start + shard_rows, rows), f"part-{f:05d}-{s:06d}.parquet"))
    return shards, about


def read_rows(path: str, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a parquet file, reading only the row groups that hold them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    groups, first, offset = [], None, 0
    for g in range(file.metadata.num_row_groups):
        n = file.metadata.row_group(g).num_rows
        if offset < stop and offset + n > start:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    if not groups:
        return file.schema_arrow.empty_table()
    table: pa.Table = file.read_row_groups(groups)
    return table.slice(start - (first or 0), stop - start)


def write_atomically(table: Any, target: Path) -> None:
    """Write to a temporary name in the same folder, then rename: readers never see a partial file."""
    import pyarrow.parquet as pq

    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


class ShardWriter:
    """Ray Data callable class: embeds whole shards (one per row of its input) and writes their files."""

    def __init__(self, output: str, **embed: Any):
        self.output = Path(output)
        self.embed = EmbedBatch(**embed)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        rows = []
        for path, start, stop, name in zip(batch["path"], batch["start"], batch["stop"], batch["name"], strict=True):
            table = read_rows(str(path), int(start), int(stop))
            done = self.embed(table, where=f"{path} (rows {start}-{int(stop) - 1})")
            write_atomically(done, self.output / str(name))
            rows.append(done.num_rows)
        return {"name": batch["name"], "rows": np.asarray(rows, dtype=np.int64)}


def check_manifest(output: Path, settings: dict[str, Any]) -> None:
    """Write the run's manifest, or check that the one there is for the same run."""
    manifest = output / MANIFEST
    if manifest.exists():
        try:
            saved = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{str(manifest)!r} is unreadable ({exc}); delete the output folder to start over"
                             ) from exc
        if saved != settings:
            differs = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
            raise InputError(f"the output folder {str(output)!r} holds a run with other {', '.join(differs)}; "
                             "use another -o folder, or delete this one to start over")
        return
    if output.exists() and any(p.name != MANIFEST and not p.name.startswith(".") for p in output.iterdir()):
        raise InputError(f"the output folder {str(output)!r} is not empty and holds no inbedder run; "
                         "use an empty or new folder")
    output.mkdir(parents=True, exist_ok=True)
    temporary = manifest.with_name(f".{MANIFEST}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, manifest)


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int | None) -> Iterator[None]:
    """Connect to ``address``; else reuse a Ray already running in this process; else start a local one."""
    import logging

    import ray

    if ray.is_initialized():
        yield
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def embed_files(*, model: str, instruction: str | None, input_path: str, output: str, text_column: str,
                instruction_column: str | None, batch_size: int, normalize: bool, device: str | None, dtype: str,
                progress: bool | None, cache_path: str | None, address: str | None, concurrency: int,
                shard_rows: int | None = None, echo: Callable[[str], None] | None = None) -> None:
    """Embed the parquet file or folder ``input_path`` into the folder ``output`` with ``concurrency`` Ray actors
    (resumably: finished shards are skipped). ``echo`` gets progress notes (default: stderr)."""
    from tqdm.auto import tqdm

    echo = echo or (lambda line: print(line, file=sys.stderr))
    require("ray.data", "ray")
    require("pyarrow", "ray")
    if concurrency < 1:
        raise InputError(f"--concurrency must be at least 1; got {concurrency}")
    shard_rows = shard_rows or int(os.environ.get(SHARD_ROWS_ENV) or DEFAULT_SHARD_ROWS)
    if shard_rows < 1:
        raise InputError(f"{SHARD_ROWS_ENV} must be at least 1; got {shard_rows}")
    columns = [text_column] + ([instruction_column] if instruction_column else [])
    shards, inputs = plan([f.resolve() for f in input_files(input_path)], shard_rows, columns)
    model = os.path.abspath(model) if os.path.exists(model) else model  # actors may run elsewhere
    cache_path = os.path.abspath(cache_path) if cache_path else None
    out = Path(output)
    settings = {"format_version": FORMAT_VERSION, "model": model, "instruction": instruction,
                "text_column": text_column, "instruction_column": instruction_column, "normalize": normalize,
                "dtype": dtype, "shard_rows": shard_rows, "inputs": inputs}
    check_manifest(out, settings)
    for stale in out.glob(".part-*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    todo = [s for s in shards if not (out / s.name).exists()]
    if len(todo) < len(shards):
        echo(f"Resuming: {len(shards) - len(todo)} of {len(shards)} shards are done")
    if not todo:
        return
    gpu = device is not None and device.startswith("cuda")
    with ray_session(address, num_cpus=max(os.cpu_count() or 1, concurrency)):
        import ray.data

        ds = ray.data.from_items([asdict(s) for s in todo], override_num_blocks=len(todo))
        ds.context.enable_progress_bars = False
        ds.context.print_on_execution_start = False
        ds.context.raise_original_map_exception = True
        done = ds.map_batches(
            ShardWriter, batch_size=1, compute=actor_pool(min(concurrency, len(todo))), num_gpus=1 if gpu else None,
            fn_constructor_kwargs={
                "output": str(out.resolve()), "model": model, "instruction": instruction,
                "text_column": text_column, "instruction_column": instruction_column, "batch_size": batch_size,
                "normalize": normalize, "cache": cache_path, "threads": None if gpu else 1,
                "load_options": {"device": device, "dtype": dtype}})
        rows = sum(s.stop - s.start for s in todo)
        show = progress if progress is not None else True
        with tqdm(total=rows, disable=not show, desc="Embedding", unit="text") as bar:
            try:
                for batch in done.iter_batches(batch_size=None, batch_format="numpy"):
                    bar.update(int(batch["rows"].sum()))
            except Exception as exc:
                found = user_error(exc)
                if found is None:
                    raise
                raise found from None
