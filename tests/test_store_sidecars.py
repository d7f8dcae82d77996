"""A store's optional sidecars (ids, metadata, tombstones): written by save(),
read and checked by load(), tombstones set in place by delete_rows(); stores
without them (every store written before them) read as before."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import raises_exactly
from pplx_codec import store

ROWS = np.arange(-20, 20, dtype=np.int8).reshape(5, 8)


def _save(path, **kw):
    return store.save(path, int8=ROWS, texts=list("abcde"), **kw)


def test_round_trip(tmp_path):
    s = _save(tmp_path / "s", ids=["1", "2", "3", "4", "5"], metadata=[{"n": i} for i in range(5)],
              deleted=np.array([0, 1, 0, 0, 1], bool))
    assert s.meta["sidecars"] == ["ids", "metadata", "deleted"]
    again = store.load(tmp_path / "s")
    assert again.ids == ["1", "2", "3", "4", "5"] and again.metadata == [{"n": i} for i in range(5)]
    assert again.deleted.tolist() == [False, True, False, False, True]
    copy = store.save(tmp_path / "copy", again)          # a Stored's sidecars are copied
    assert copy.ids == again.ids and copy.deleted.tolist() == again.deleted.tolist()


def test_a_store_without_sidecars_reads_as_before(tmp_path):
    s = _save(tmp_path / "s")
    assert "sidecars" not in s.meta and s.ids is None and s.metadata is None and s.deleted is None
    # a caller's meta cannot claim sidecars that were not written
    s = _save(tmp_path / "t", meta={"sidecars": ["ids"]})
    assert "sidecars" not in s.meta and store.load(tmp_path / "t").ids is None


def test_delete_rows_in_place(tmp_path):
    _save(tmp_path / "s", ids=list("vwxyz"))
    before = (tmp_path / "s" / "vectors.npy").stat().st_mtime_ns
    assert store.delete_rows(tmp_path / "s", [3]).tolist() == [False, False, False, True, False]
    assert store.delete_rows(tmp_path / "s", np.array([0])).tolist() == [True, False, False, True, False]
    s = store.load(tmp_path / "s")
    assert s.meta["sidecars"] == ["ids", "deleted"] and s.deleted.tolist() == [True, False, False, True, False]
    assert (tmp_path / "s" / "vectors.npy").stat().st_mtime_ns == before     # the rows were not rewritten
    with raises_exactly(IndexError, "rows to delete must be in 0..4, got 0..5"):
        store.delete_rows(tmp_path / "s", [0, 5])


def test_an_unlisted_mask_is_not_read(tmp_path):
    """A delete interrupted between its two renames: the mask is there, meta.json does not list it."""
    _save(tmp_path / "s")
    np.save(tmp_path / "s" / "deleted.npy", np.ones(5, bool))
    assert store.load(tmp_path / "s").deleted is None


@pytest.mark.parametrize(("kw", "exc", "message"), [
    ({"ids": ["1", "2", "1", "4", "5"]}, ValueError, "ids[2] = '1' repeats an earlier id: ids must be unique"),
    ({"ids": ["1", "2"]}, ValueError, "got 2 ids for 5 rows"),
    ({"ids": "12345"}, TypeError, "ids must be a sequence of str (one per row), got str"),
    ({"ids": [1, 2, 3, 4, 5]}, TypeError, "ids[0] must be str, got int"),
    ({"metadata": [{}] * 4}, ValueError, "got 4 metadata dicts for 5 rows"),
    ({"metadata": {"a": 1}}, TypeError, "metadata must be a sequence of dicts (one per row), got dict"),
    ({"metadata": [{}, {}, {1: 2}, {}, {}]}, TypeError, "metadata[2] must be a dict with str keys, got dict"),
    ({"metadata": [{}, {"x": float("nan")}, {}, {}, {}]}, TypeError,
     "metadata[1] must be JSON-serializable: Out of range float values are not JSON compliant"),
    ({"deleted": np.zeros(4, bool)}, TypeError, "deleted must be a numpy bool array of shape (5,), got bool (4,)"),
    ({"deleted": [False] * 5}, TypeError, "deleted must be a numpy bool array of shape (5,), got list"),
])
def test_bad_sidecars_are_refused_before_anything_is_written(tmp_path, kw, exc, message):
    with raises_exactly(exc, message):
        _save(tmp_path / "s", **kw)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: (p / "ids.jsonl").write_text('"1"\n"1"\n"3"\n"4"\n"5"\n'),
     "ids.jsonl: corrupt store: ids[1] = '1' repeats an earlier id: ids must be unique"),
    (lambda p: (p / "ids.jsonl").write_text('"1"\n"2"\n'), "ids.jsonl: corrupt store"),
    (lambda p: (p / "metadata.jsonl").write_text('{}\n[]\n{}\n{}\n{}\n'),
     "metadata.jsonl: corrupt store: metadata[1] must be a dict with str keys, got list"),
    (lambda p: np.save(p / "deleted.npy", np.zeros(3, bool)),
     "deleted.npy: corrupt store: deleted must be a numpy bool array of shape (5,), got bool (3,)"),
    (lambda p: _meta(p, sidecars=["ids", "ids"]), "sidecars must be a list of 'ids', 'metadata', 'deleted'"),
    (lambda p: _meta(p, sidecars="ids"), "sidecars must be a list of 'ids', 'metadata', 'deleted'"),
])
def test_damaged_sidecars_are_a_clear_error(tmp_path, damage, message):
    _save(tmp_path / "s", ids=list("12345"), metadata=[{}] * 5, deleted=np.zeros(5, bool))
    damage(tmp_path / "s")
    with pytest.raises(ValueError) as e:
        store.load(tmp_path / "s")
    assert message in str(e.value)


def test_a_listed_sidecar_that_is_missing(tmp_path):
    _save(tmp_path / "s", ids=list("12345"))
    (tmp_path / "s" / "ids.jsonl").unlink()
    with raises_exactly(FileNotFoundError, f"{tmp_path / 's' / 'ids.jsonl'} is missing: incomplete store "
                                           "(meta.json lists it)"):
        store.load(tmp_path / "s")


def _meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, **changes}))
