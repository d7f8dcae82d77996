"""What every sink shares, before any database: target strings, the rows a
target is given (ids, bit order, derived codes), table names, masked DSNs and
the export command's refusals.  Each target's own tests load real databases
(tests/test_sink_*.py)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import raises_exactly
from pplx_codec import cli, pack_bits, store
from pplx_codec.sinks import target_kind
from pplx_codec.sinks._base import check_table_name, mask_password, shown_dsn
from pplx_codec.sinks._rows import Layout, batch_of, layout_of, store_batches


@pytest.mark.parametrize("target,kind,where", [
    ("postgresql://u:p@h/db", "pgvector", "postgresql://u:p@h/db"),
    ("postgres://h/db", "pgvector", "postgres://h/db"),
    ("lancedb:vecs", "lancedb", "vecs"),
    ("lancedb:///abs/vecs", "lancedb", "/abs/vecs"),
    ("out/vecs.lance", "lancedb", "out/vecs.lance"),
    ("out/vecs.lancedb/", "lancedb", "out/vecs.lancedb/"),
    ("sqlite:v.bin", "sqlite-vec", "v.bin"),
    ("v.sqlite", "sqlite-vec", "v.sqlite"),
    ("v.sqlite3", "sqlite-vec", "v.sqlite3"),
    ("dir/v.db", "sqlite-vec", "dir/v.db"),
])
def test_target_kind(target, kind, where):
    assert target_kind(target) == (kind, where)


@pytest.mark.parametrize("target", ["vecs", "mysql://h/db", "v.parquet", ""])
def test_unknown_targets_are_refused_naming_the_forms(target):
    with pytest.raises(ValueError, match=f"^unknown target {target!r}: use postgresql://"):
        target_kind(target)


def test_a_scheme_without_a_path_is_refused():
    with raises_exactly(ValueError, "target 'sqlite:' names no path"):
        target_kind("sqlite:")
    with raises_exactly(TypeError, "target must be a string, got int"):
        target_kind(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "t;drop table x", "x" * 64, "é", None, 3])
def test_table_names_are_plain_identifiers(name):
    with pytest.raises(ValueError, match="^table name must be letters, digits and _"):
        check_table_name(name)


def test_table_name_accepted():
    assert check_table_name("Docs_2") == "Docs_2" and check_table_name("_" + "x" * 62)


@pytest.mark.parametrize("dsn", ["postgresql://alice:s3cr%t@db.example/x", "postgresql://alice:s3cr%t@db.example:5/x?a=b",
                                 "host=db user=alice password=s3cr%t dbname=x"])
def test_the_password_is_never_shown(dsn):
    assert "s3cr%t" not in shown_dsn(dsn)
    assert "s3cr%t" not in mask_password(f"connection failed for {dsn}: password s3cr%t rejected", dsn)
    assert "***" in shown_dsn(dsn)


def test_a_dsn_without_password_is_shown_as_is():
    assert shown_dsn("postgresql://alice@db/x") == "postgresql://alice@db/x"


def _rows(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, (n, d), dtype=np.int8)


@pytest.mark.parametrize("target_order", ["little", "big"])
@pytest.mark.parametrize("given", ["codes-little", "codes-big", "int8-only"])
def test_a_batch_holds_codes_in_the_targets_order(target_order, given):
    v = _rows(5, 24)
    want = pack_bits(v, target_order)  # bit = value > 0: binary_quantize's and vec_quantize_binary's rule
    lay = layout_of("m", 24, True)
    codes = {"codes-little": (pack_bits(v, "little"), "little"), "codes-big": (pack_bits(v, "big"), "big"),
             "int8-only": (None, "little")}[given]
    b = batch_of(7, v, codes[0], codes[1], None, target_order, lay)
    np.testing.assert_array_equal(b.bits, want)
    np.testing.assert_array_equal(b.ids, np.arange(7, 12))
    assert b.texts == [""] * 5 and len(b) == 5 and b.end == 12


def test_no_bit_column_where_dimensions_do_not_pack():
    assert layout_of(None, 130, True) == Layout(None, 130, True, False)
    b = batch_of(0, _rows(3, 130), None, "little", ["a", "b", "c"], "big", layout_of(None, 130, True))
    assert b.bits is None and b.texts == ["a", "b", "c"]


@pytest.mark.parametrize("n,block", [(0, 4), (1, 4), (4, 4), (5, 4), (130, 64)])
def test_store_batches_cover_every_row_once(tmp_path, n, block):
    v = _rows(n, 16, 1)
    texts = [f"t{i}\n\"é\"" for i in range(n)]
    s = store.save(tmp_path / "s", int8=v, binary=pack_bits(v, "little"), texts=texts, bitorder="little")
    lay = layout_of(None, 16, True)
    got = list(store_batches(store.load(s.path), "big", lay, rows=block))
    assert [b.first for b in got] == list(range(0, n, block))
    if n:
        np.testing.assert_array_equal(np.concatenate([b.int8 for b in got]), v)
        np.testing.assert_array_equal(np.concatenate([b.bits for b in got]), pack_bits(v, "big"))
    assert [t for b in got for t in b.texts] == texts


def test_layout_mismatch_names_each_difference():
    rows, table = Layout("a", 1024, True, True), Layout("b", 512, True, False)
    assert rows.mismatch(table) == "model 'b' (the rows: 'a'), dimensions 512 (the rows: 1024), binary False " \
                                   "(the rows: True)"
    assert rows.mismatch(Layout.from_dict(rows.as_dict())) is None


def _export(capsys, *argv):
    rc = cli.main(["export", *argv])
    return rc, capsys.readouterr().err


def test_export_refusals_are_one_line(tmp_path, capsys):
    rc, err = _export(capsys, str(tmp_path / "none"), "v.sqlite")
    assert rc == 2 and err.startswith("pplx-codec export: ") and err.count("\n") == 1
    assert str(tmp_path / "none") in err
    rc, err = _export(capsys, str(tmp_path), "nowhere")
    assert (rc, err) == (2, "pplx-codec export: unknown target 'nowhere': use postgresql://USER:PASSWORD@HOST/DB "
                            "(pgvector), lancedb:DIR or DIR.lance (LanceDB), sqlite:FILE or FILE.sqlite / .sqlite3 / "
                            ".db (sqlite-vec)\n")
    rc, err = _export(capsys, str(tmp_path), "v.sqlite", "--streams", "2", "--index", "hnsw")
    assert (rc, err) == (2, "pplx-codec export: --index, --streams: pgvector options; sqlite-vec takes none of them\n")
    rc, err = _export(capsys, str(tmp_path), "v.sqlite", "--table", "a-b")
    assert rc == 2 and err.startswith("pplx-codec export: table name must be letters") and err.count("\n") == 1
