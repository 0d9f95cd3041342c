"""Float32 vectors kept as the bytes the cache stores, one row each.

A fully cached CLI run reads rows from SQLite and writes them out; with :class:`PackedRows` it does so without
importing numpy (most of such a run's time would otherwise be that import). ``np.asarray(rows)`` gives the usual
``(n, d)`` float32 array when one is needed.
"""

from __future__ import annotations

import math
import os
import sys
from array import array
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from ..errors import InputError, NonFiniteError

if TYPE_CHECKING:
    import numpy as np

FLOAT32 = "<f4" if sys.byteorder == "little" else ">f4"  # how the cache's bytes are laid out (native float32)


class PackedRows:
    """``n`` vectors of ``dim`` float32 values, each as ``4 * dim`` native-order bytes."""

    def __init__(self, rows: list[bytes], dim: int) -> None:
        bad = [i for i, row in enumerate(rows) if len(row) != 4 * dim]
        if bad:
            raise InputError(f"cached vectors of rows {bad[:10]} do not have {dim} float32 values")
        self.rows, self.dim = rows, dim

    @classmethod
    def from_array(cls, vectors: Any) -> PackedRows:
        """An ``(n, d)`` array (or anything ``np.asarray`` takes) as float32 rows."""
        import numpy as np

        array2d = np.ascontiguousarray(vectors, dtype=FLOAT32)
        if array2d.ndim != 2:
            raise InputError(f"expected an (n, d) array of vectors; got shape {array2d.shape}")
        return cls([row.tobytes() for row in array2d], array2d.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.dim

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[array]:
        """Each row as an ``array('f')`` (``.tolist()`` gives the same floats as numpy's)."""
        return (array("f", row) for row in self.rows)

    def check_finite(self) -> PackedRows:
        """Raise :class:`NonFiniteError` naming the rows with NaN or infinity.

        Only a float32 whose top byte (sign + 7 exponent bits) is 0x7f or 0xff can be non-finite; the rows are
        summed (a float64 sum of float32 values is finite exactly when every value is) only if such a byte occurs.
        """
        top = b"".join(self.rows)[3 if FLOAT32[0] == "<" else 0::4]
        if b"\x7f" in top or b"\xff" in top:
            bad = [i for i, row in enumerate(self) if not math.isfinite(sum(row))]
            if bad:
                raise NonFiniteError(f"non-finite values in the vectors of rows {bad[:10]}")
        return self

    def to_numpy(self) -> np.ndarray:
        import numpy as np

        if not self.rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.frombuffer(b"".join(self.rows), dtype=FLOAT32).astype(np.float32).reshape(self.shape)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.to_numpy()
        return out if dtype is None else out.astype(dtype)

    def write_npy(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        """Write the ``.npy`` file ``np.save`` would write (format 1.0, C order, float32)."""
        shape = self.shape if self.rows else (0, 0)
        header = f"{{'descr': '{FLOAT32}', 'fortran_order': False, 'shape': {shape}, }}"
        header += " " * (63 - (10 + len(header)) % 64) + "\n"  # the data starts at a multiple of 64 bytes
        data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1")
        if isinstance(target, (str, os.PathLike)):
            with open(target, "wb") as f:
                self._write_rows(data, f)
        else:
            self._write_rows(data, target)

    def _write_rows(self, header: bytes, f: IO[bytes]) -> None:
        """``header`` then the rows, joined into writes of about 4 MB: one call per row is ~3x slower."""
        step = max(1, (4 << 20) // max(1, 4 * self.dim))
        f.write(header)
        for start in range(0, len(self.rows), step):
            f.write(b"".join(self.rows[start:start + step]))

