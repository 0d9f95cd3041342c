"""Settings of the embeddings service: limits, batching, auth. Every value is checked when it is made."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class ServeConfig:
    """Limits, batching and auth of one server.

    ``max_batch_rows`` bounds a merged batch (a single larger request still runs whole, alone);
    ``max_batch_tokens`` bounds it by tokens too; ``max_wait_ms`` is how long the first request of a batch
    waits for others to join; ``max_queue_rows`` bounds the rows waiting per model (more → 429).
    """

    max_inputs: int = 2048  # inputs per request
    max_input_chars: int = 32_768  # characters per input (and per instruction)
    max_body_bytes: int = 8 * 1024 * 1024
    request_timeout: float = 120.0  # seconds from arrival to answer
    max_batch_rows: int = 256
    max_batch_tokens: int = 32_768
    max_wait_ms: float = 5.0
    max_queue_rows: int = 8192
    batch_size: int = 32  # rows per forward pass inside a merged batch
    api_keys: tuple[str, ...] = ()
    retry_after: int = 1  # seconds, in the Retry-After header of a 429

    def __post_init__(self) -> None:
        positive = {"max_inputs": self.max_inputs, "max_input_chars": self.max_input_chars,
                    "max_body_bytes": self.max_body_bytes, "max_batch_rows": self.max_batch_rows,
                    "max_batch_tokens": self.max_batch_tokens, "max_queue_rows": self.max_queue_rows,
                    "batch_size": self.batch_size, "retry_after": self.retry_after}
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive int; got {value!r}")
        if not self.request_timeout > 0:
            raise InputError(f"request_timeout must be > 0 seconds; got {self.request_timeout!r}")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise InputError(f"max_wait_ms must be between 0 and 10000; got {self.max_wait_ms!r}")
        if self.max_inputs > self.max_queue_rows:
            raise InputError(f"max_inputs ({self.max_inputs}) must not exceed max_queue_rows "
                             f"({self.max_queue_rows}): such a request could never be queued")
        for i, key in enumerate(self.api_keys):
            if not isinstance(key, str) or not key.strip() or key != key.strip():
                raise InputError(f"api key {i} is empty or has surrounding spaces")


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``: addresses only this machine can reach."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
