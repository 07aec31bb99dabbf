"""Damaged copies of the files the toolkit reads: truncated, bytes flipped, or another kind's
file in their place. Deterministic: a damage is named by its kind and a seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Damage:
    """One way to damage a file; ``name`` says what was done, for the test id."""

    name: str
    kind: str  # "truncate", "flip" or "replace"
    fraction: float = 0.0  # where: a fraction of the file's length
    count: int = 1  # flipped bytes
    other: str | None = None  # the kind of file put in its place

    def apply(self, path: Path, good: dict[str, Path]) -> None:
        data = path.read_bytes()
        if self.kind == "truncate":
            path.write_bytes(data[:int(self.fraction * len(data))])
        elif self.kind == "flip":
            rng = np.random.default_rng(int(self.fraction * 1e6) + self.count)
            raw = bytearray(data)
            start = int(self.fraction * len(raw))
            for offset in rng.integers(start, len(raw), self.count):
                raw[offset] ^= int(rng.integers(1, 256))
            path.write_bytes(bytes(raw))
        else:
            path.write_bytes(good[self.other].read_bytes())


def damages(kind: str, kinds: list[str]) -> list[Damage]:
    """The damages every kind of file gets: truncated to nothing, to half and by its last byte;
    one byte flipped near the start and in the middle, 16 bytes flipped anywhere; replaced by
    the next kind's file and by random bytes."""
    following = kinds[(kinds.index(kind) + 1) % len(kinds)]
    return [Damage("empty", "truncate", 0.0),
            Damage("truncated at half", "truncate", 0.5),
            Damage("last byte missing", "truncate", 1.0 - 1e-9),
            Damage("one byte flipped near the start", "flip", 0.01),
            Damage("one byte flipped in the middle", "flip", 0.5),
            Damage("16 bytes flipped", "flip", 0.0, count=16),
            Damage(f"replaced by the {following} file", "replace", other=following),
            Damage("replaced by random bytes", "replace", other="random")]


def random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    return path
