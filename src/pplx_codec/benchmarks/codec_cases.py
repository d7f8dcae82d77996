"""Codec family: base64 -> int8/binary matrices, one-blob base64, bit packing, int8 norms.

Peers are what a user would write instead: the stdlib and numpy, and pybase64
(the fastest base64 on PyPI) used per item, on one blob, or joined.
"""

from __future__ import annotations

import base64

import numpy as np

import pplx_codec as pc

from ._harness import Case, Impl, optional


def _strings(x: np.ndarray) -> list[str]:
    return [base64.b64encode(row.tobytes()).decode() for row in x]


def _decode_rows_case(n: int, dim: int, binary: bool, pybase64, missing: list[str]) -> Case:
    rng = np.random.default_rng(dim + n)
    width = dim // 8 if binary else dim
    dtype = np.uint8 if binary else np.int8
    x = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (n, width), dtype=dtype)
    strs = _strings(x)
    out = np.empty_like(x)
    if binary:
        ours = [Impl("decode_binary", lambda: pc.decode_binary(strs, dim), True),
                Impl("decode_binary(out=)", lambda: pc.decode_binary(strs, dim, out=out), True)]
    else:
        ours = [Impl("decode_int8", lambda: pc.decode_int8(strs, dim), True),
                Impl("decode_int8(out=)", lambda: pc.decode_int8(strs, dim, out=out), True)]
    impls = ours + [
        Impl("stdlib b64decode(validate) + join",
             lambda: np.frombuffer(b"".join(base64.b64decode(s, validate=True) for s in strs),
                                   dtype).reshape(n, width)),
    ]
    if pybase64:
        impls += [
            Impl("pybase64 per item + np.stack",
                 lambda: np.stack([np.frombuffer(pybase64.b64decode(s), dtype) for s in strs])),
            Impl("pybase64 per item(validate) + np.stack",
                 lambda: np.stack([np.frombuffer(pybase64.b64decode(s, validate=True), dtype)
                                   for s in strs])),
            Impl("pybase64 per item(validate) + join",
                 lambda: np.frombuffer(b"".join(pybase64.b64decode(s, validate=True) for s in strs),
                                       dtype).reshape(n, width)),
        ]
    kind = "binary" if binary else "int8"
    return Case("codec", f"decode_{kind} {n} x {dim}{' bits' if binary else ''}", x.nbytes, x, impls,
                list(missing), target=("pybase64", 3.0) if not binary and dim == 1024 else None,
                note="base64 strings -> matrix")


def cases(quick: bool = False) -> list[Case]:
    missing: list[str] = []
    pybase64 = optional("pybase64", missing)
    rng = np.random.default_rng(42)
    out: list[Case] = [
        _decode_rows_case(512, 1024, False, pybase64, missing),
        _decode_rows_case(512, 2560, False, pybase64, missing),
        _decode_rows_case(512, 1024, True, pybase64, missing),
    ]

    # one large blob (8 MiB decoded): the raw decoder against pybase64's AVX2 codec
    blob = rng.integers(0, 256, 8 << 20, dtype=np.uint8)
    text = base64.b64encode(blob.tobytes())
    impls = [Impl("b64decode", lambda: pc.b64decode(text), True),
             Impl("stdlib b64decode(validate)", lambda: np.frombuffer(base64.b64decode(text, validate=True),
                                                                    np.uint8))]
    if pybase64:
        impls += [Impl("pybase64 b64decode(validate)",
                       lambda: np.frombuffer(pybase64.b64decode(text, validate=True), np.uint8)),
                  Impl("pybase64 b64decode", lambda: np.frombuffer(pybase64.b64decode(text), np.uint8))]
    out.append(Case("codec", "b64decode 8 MiB blob", blob.nbytes, blob, impls, list(missing),
                    target=("pybase64 b64decode(validate)", 0.9), note="strict decode, allocating"))

    impls = [Impl("b64encode", lambda: pc.b64encode(blob), True),
             Impl("stdlib b64encode", lambda: base64.b64encode(blob.data))]
    if pybase64:
        impls.append(Impl("pybase64 b64encode", lambda: pybase64.b64encode(blob)))
    out.append(Case("codec", "b64encode 8 MiB blob", len(text), text, impls, list(missing),
                    check=lambda got, want: np.testing.assert_equal(bytes(got), want)))

    # encode rows: what the reference server does per response
    x = rng.integers(-128, 128, (512, 1024), dtype=np.int8)
    strs = _strings(x)
    impls = [Impl("encode_int8", lambda: pc.encode_int8(x), True),
             Impl("stdlib b64encode per row", lambda: [base64.b64encode(r).decode() for r in x])]
    if pybase64:
        impls.append(Impl("pybase64 b64encode per row", lambda: [pybase64.b64encode(r).decode() for r in x]))
    out.append(Case("codec", "encode_int8 512 x 1024", sum(map(len, strs)), strs, impls, list(missing),
                    check=lambda got, want: np.testing.assert_equal(got, want)))

    # bits: 4096 codes of 1024 dimensions (a rescoring candidate set)
    n = 4096
    codes = rng.integers(0, 256, (n, 128), dtype=np.uint8)
    bits = np.unpackbits(codes, axis=1, bitorder="little")
    ubuf = np.empty((n, 1024), np.uint8)
    out.append(Case("codec", f"unpack_bits {n} x 1024 -> uint8", bits.nbytes, bits, [
        Impl("unpack_bits", lambda: pc.unpack_bits(codes), True),
        Impl("unpack_bits(out=)", lambda: pc.unpack_bits(codes, out=ubuf), True),
        Impl("np.unpackbits(bitorder=little)", lambda: np.unpackbits(codes, axis=1, bitorder="little")),
    ], target=("np.unpackbits", 2.0)))

    signs = np.where(bits == 1, np.float32(1), np.float32(-1))
    out.append(Case("codec", f"unpack_bits {n} x 1024 -> float32 +-1", signs.nbytes, signs, [
        Impl("unpack_bits(dtype=float32)", lambda: pc.unpack_bits(codes, dtype=np.float32), True),
        Impl("numpy unpackbits * 2 - 1",
             lambda: np.unpackbits(codes, axis=1, bitorder="little").astype(np.float32) * 2 - 1),
    ]))

    xi = rng.integers(-128, 128, (n, 1024), dtype=np.int8)
    packed_i = np.packbits(xi > 0, axis=1, bitorder="little")
    out.append(Case("codec", f"pack_bits int8 {n} x 1024", packed_i.nbytes, packed_i, [
        Impl("pack_bits", lambda: pc.pack_bits(xi), True),
        Impl("np.packbits(x > 0, bitorder=little)", lambda: np.packbits(xi > 0, axis=1, bitorder="little")),
    ]))
    xf = rng.standard_normal((n, 1024), dtype=np.float32)
    packed_f = np.packbits(xf > 0, axis=1, bitorder="little")
    out.append(Case("codec", f"pack_bits float32 {n} x 1024", packed_f.nbytes, packed_f, [
        Impl("pack_bits", lambda: pc.pack_bits(xf), True),
        Impl("np.packbits(x > 0, bitorder=little)", lambda: np.packbits(xf > 0, axis=1, bitorder="little")),
    ]))

    lut = np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], np.uint8)
    reversed_ = lut[codes]
    out.append(Case("codec", f"reverse_bitorder {n} x 128 B", codes.nbytes, reversed_, [
        Impl("reverse_bitorder", lambda: pc.reverse_bitorder(codes), True),
        Impl("numpy 256-entry table lut[codes]", lambda: lut[codes]),
        Impl("np.packbits(np.unpackbits(little), big)",
             lambda: np.packbits(np.unpackbits(codes, axis=1, bitorder="little"), axis=1, bitorder="big")),
    ]))

    exact = np.sqrt(np.einsum("ij,ij->i", xi.astype(np.int64), xi.astype(np.int64))).astype(np.float32)
    out.append(Case("codec", f"norms int8 {n} x 1024", xi.nbytes, exact, [  # a reduction: count bytes read
        Impl("norms", lambda: pc.norms(xi), True),
        Impl("np.linalg.norm(x.astype(float32))", lambda: np.linalg.norm(xi.astype(np.float32), axis=1)),
        Impl("sqrt(einsum int32)", lambda: np.sqrt(np.einsum("ij,ij->i", xi.astype(np.int32),
                                                             xi.astype(np.int32))).astype(np.float32)),
    ], check=lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6),
        note="numpy peers are checked to 1e-6; ours is exact"))

    unit = xi.astype(np.float32) / exact[:, None]
    out.append(Case("codec", f"to_float32(normalize) {n} x 1024", unit.nbytes, unit, [
        Impl("to_float32", lambda: pc.to_float32(xi), True),
        Impl("x.astype(float32) / norms", lambda: xi.astype(np.float32) / exact[:, None]),
        Impl("x / np.linalg.norm", lambda: (lambda f: f / np.linalg.norm(f, axis=1, keepdims=True))(
            xi.astype(np.float32))),
    ], check=lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6)))
    return out
