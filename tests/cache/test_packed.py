"""PackedRows: cached float32 rows written as .npy and read as floats without numpy, byte for byte as numpy."""

from __future__ import annotations

import io

import numpy as np
import pytest

from inbedder.cache.packed import PackedRows
from inbedder.errors import InputError, NonFiniteError


def packed(array: np.ndarray) -> PackedRows:
    return PackedRows([row.tobytes() for row in array], array.shape[1] if array.size else 0)


@pytest.mark.parametrize("shape", [(1, 3), (5, 384), (7, 1), (2, 1000), (7, 400_000)])  # the last: 3 writes of rows
def test_npy_bytes_equal_numpy_save(shape: tuple[int, int]) -> None:
    array = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ours, theirs = io.BytesIO(), io.BytesIO()
    packed(array).write_npy(ours)
    np.save(theirs, array)
    assert ours.getvalue() == theirs.getvalue()
    np.testing.assert_array_equal(np.load(io.BytesIO(ours.getvalue())), array)


def test_empty_rows_write_an_empty_array(tmp_path) -> None:
    PackedRows([], 0).write_npy(tmp_path / "e.npy")
    assert np.load(tmp_path / "e.npy").shape == (0, 0)


def test_rows_floats_and_numpy_view_match_numpy() -> None:
    array = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    rows = packed(array)
    assert rows.shape == (4, 6) and len(rows) == 4
    assert [row.tolist() for row in rows] == array.tolist()
    converted = np.asarray(rows)
    assert converted.dtype == np.float32
    np.testing.assert_array_equal(converted, array)


def test_non_finite_rows_are_named() -> None:
    array = np.ones((5, 3), dtype=np.float32)
    array[1, 2], array[3, 0] = np.nan, np.inf
    with pytest.raises(NonFiniteError, match=r"rows \[1, 3\]"):
        packed(array).check_finite()
    big = np.full((2, 384), np.finfo(np.float32).max, dtype=np.float32)  # huge but finite: the check must pass
    assert packed(big).check_finite().shape == (2, 384)


def test_rows_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(InputError, match=r"rows \[1\] do not have 3 float32 values"):
        PackedRows([b"\0" * 12, b"\0" * 8], 3)


def test_huge_finite_values_pass_and_every_non_finite_pattern_is_caught() -> None:
    array = np.zeros((3, 4), dtype=np.float32)
    array[0, 1] = 2.0 ** 127  # top byte 0x7f, finite: the quick scan looks closer and lets it pass
    array[1, 3] = -(2.0 ** 127)
    assert packed(array).check_finite().shape == (3, 4)
    for bad in (np.inf, -np.inf, np.nan, -np.nan):
        array[2, 0] = bad
        with pytest.raises(NonFiniteError, match=r"rows \[2\]"):
            packed(array).check_finite()


def test_from_array_keeps_values_and_refuses_other_shapes() -> None:
    array = np.random.default_rng(2).standard_normal((3, 5))
    rows = PackedRows.from_array(array)
    np.testing.assert_array_equal(rows.to_numpy(), array.astype(np.float32))
    with pytest.raises(InputError, match=r"\(n, d\) array.*\(5,\)"):
        PackedRows.from_array(array[0])
