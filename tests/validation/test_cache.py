"""The task cache: what is stored is what is read back, and a damaged file is never read as a
result (encode vs decode, and corruption by any single byte)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from validation.sweeps import CorruptEntryError, TaskCache, parse_spec

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                     st.floats(allow_nan=False), st.text(max_size=20))
_METRICS = st.dictionaries(st.text(min_size=1, max_size=12),
                           st.one_of(_SCALARS, st.lists(_SCALARS, max_size=5)), max_size=6)
_TASK = parse_spec({"experiment": "convergence", "grid": {"n": [64]}}, name="t").tasks()[0]


@settings(max_examples=60, deadline=None)
@given(metrics=_METRICS, seconds=st.floats(0, 1e4), position=st.floats(0, 1),
       byte=st.integers(0, 255))
def test_round_trip_and_any_single_byte_change(tmp_path_factory, metrics, seconds, position,
                                                byte):
    cache = TaskCache(tmp_path_factory.mktemp("cache"))
    stored = cache.store(_TASK, {"status": "ok", "metrics": metrics, "seconds": seconds,
                                 "worker": "w"})
    assert cache.load(_TASK) == stored
    assert stored["metrics"] == json.loads(json.dumps(metrics))
    path = cache.path(_TASK)
    raw = bytearray(path.read_bytes())
    raw[int(position * (len(raw) - 1))] = byte
    path.write_bytes(bytes(raw))
    try:
        loaded = cache.load(_TASK)
    except CorruptEntryError:
        return
    # A change that leaves the content equal (e.g. whitespace) may be read; nothing else.
    assert loaded == stored


def test_entry_of_another_task_is_rejected(tmp_path):
    cache = TaskCache(tmp_path)
    other = parse_spec({"experiment": "convergence", "grid": {"n": [65]}}, name="t").tasks()[0]
    cache.store(other, {"status": "ok", "metrics": {}, "seconds": 0.0, "worker": "w"})
    cache.path(_TASK).parent.mkdir(parents=True, exist_ok=True)
    cache.path(_TASK).write_bytes(cache.path(other).read_bytes())
    try:
        cache.load(_TASK)
    except CorruptEntryError as exc:
        assert "holds another task" in str(exc)
    else:
        raise AssertionError("an entry of another task was read")
