"""A small program on the public API, written as a user's typed code would be.

tests/test_static.py checks it with ``mypy --strict`` (against the installed
package: its ``py.typed`` marker and the ``.pyi`` stubs of the compiled
modules) and runs it, so that every call here is real: embeddings from the
reference server (hash backend, no API key), codecs, exact search, indexes,
a store on disk.  Not a pytest module (pytest collects ``test_*.py`` only).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

import pplx_codec as pc
from pplx_codec import store
from pplx_codec.server import running

KEY = "example-key-0123456789"
TEXTS = ["read a file line by line", "sort a list of tuples", "open a socket", "parse JSON from a string"]


def codecs(vectors: npt.NDArray[np.int8]) -> npt.NDArray[np.uint8]:
    """int8 rows -> base64 -> rows again; packed codes in both bit orders."""
    wire: list[str] = pc.encode_int8(vectors)
    back: npt.NDArray[np.int8] = pc.decode_int8(wire, dim=vectors.shape[1])
    assert np.array_equal(back, vectors)
    codes: npt.NDArray[np.uint8] = pc.pack_bits(vectors, bitorder="little")
    assert np.array_equal(pc.decode_binary(pc.encode_binary(codes), dim=vectors.shape[1]), codes)
    msb: npt.NDArray[np.uint8] = pc.reverse_bitorder(codes)
    signs: npt.NDArray[np.float32] = pc.unpack_bits(msb, bitorder="big", dtype=np.float32)
    assert signs.shape == vectors.shape
    blob: bytes = pc.b64encode(vectors.tobytes())
    assert pc.b64decode(blob).tobytes() == vectors.tobytes()
    norms: npt.NDArray[np.float32] = pc.norms(vectors)
    unit: npt.NDArray[np.float32] = pc.to_float32(vectors, normalize=True)
    assert np.allclose(np.linalg.norm(unit, axis=1), np.where(norms > 0, 1.0, 0.0), atol=1e-5)
    short: npt.NDArray[np.int8] = pc.truncate(vectors, 128)
    assert short.shape == (vectors.shape[0], 128)
    return codes


def search(vectors: npt.NDArray[np.int8], codes: npt.NDArray[np.uint8], k: int) -> list[int]:
    """Exact search, functions and indexes: the nearest rows of row 0."""
    D, I = pc.search_binary(codes[:1], codes, k)
    S, J = pc.search_int8(vectors[0], vectors, k, metric="cosine")
    distances: npt.NDArray[np.int32] = pc.hamming(codes[0], codes)
    dots: npt.NDArray[np.int32] = pc.dot(vectors[0], vectors)
    cos: npt.NDArray[np.float32] = pc.cosine(vectors[:2], vectors)
    assert int(distances[0]) == 0 and int(dots[0]) > 0 and cos.shape == (2, len(vectors))
    assert pc.hamming_matrix(codes, codes).shape == pc.dot_matrix(vectors, vectors).shape
    merged, ids = pc.merge_topk([(D, I), (D, I)], k, offsets=[0, len(codes)])
    assert merged.shape == ids.shape == (1, k)

    index = pc.Index(vectors.shape[1])
    index.add(vectors)
    scores, rows = index.search(vectors[0], k, rescore=2)
    binary = pc.BinaryIndex(vectors.shape[1])
    binary.add(codes)
    int8 = pc.Int8Index(vectors.shape[1])
    int8.add(vectors, norms=pc.norms(vectors))
    assert len(index) == len(binary) == int8.ntotal == len(vectors)
    assert binary.search(codes[0], k)[1][0] == I[0, 0]
    assert int8.search(vectors[0], k)[1][0] == J[0] == rows[0]
    assert scores.dtype == S.dtype == np.float32
    return [int(r) for r in rows]


def stored(vectors: npt.NDArray[np.int8], codes: npt.NDArray[np.uint8], texts: list[str], where: Path) -> int:
    """A store written at once, another range by range; both opened again."""
    saved: store.Stored = store.save(where / "all", int8=vectors, binary=codes, texts=texts, meta={"note": "x"})
    with store.Writer.create(where / "ranges", len(vectors), vectors.shape[1], encodings=("int8",)) as w:
        for start in range(0, len(vectors), 2):
            w.write(start, int8=vectors[start:start + 2])
        assert w.missing().size == 0
        again = w.commit()
    loaded = store.load(where / "all")
    assert loaded.count == saved.count == again.count and loaded.texts is not None
    hits = loaded.index().search(vectors[0], 2)
    groups: list[list[int]] = pc.dedup(loaded, 0.95) + pc.dedup(vectors, threshold=0.9, candidates=2, threads=1)
    return loaded.dimensions + len(hits[1]) + len(groups)


def embed(url: str) -> pc.Embeddings:
    with pc.Client(api_key=KEY, base_url=url, max_retries=0) as client:
        got: pc.Embeddings = client.embed(TEXTS, dimensions=256)
        docs: pc.ContextualizedEmbeddings = client.embed_contextualized([TEXTS[:2], TEXTS[2:]], dimensions=256)
        assert len(docs) == 2 and docs[1].shape == (2, 256)
        usage: pc.Usage = got.usage
        assert usage.total_tokens > 0
        return got


async def embed_async(url: str) -> pc.Embeddings:
    async with pc.AsyncClient(api_key=KEY, base_url=url) as client:
        return await client.embed(TEXTS, dimensions=256, encoding_format="base64_binary")


def main() -> None:
    caps = pc.capabilities()
    with running(api_keys=[KEY], backend="hash") as url:
        got = embed(url)
        binary = asyncio.run(embed_async(url))
    vectors: npt.NDArray[np.int8] = got.vectors
    codes = codecs(vectors)
    assert binary.vectors.shape == codes.shape and binary.bitorder == "little"
    nearest = search(vectors, codes, k=3)
    assert nearest[0] == 0
    with tempfile.TemporaryDirectory() as tmp:
        dims = stored(vectors, codes, TEXTS, Path(tmp))
    print(f"{pc.__version__}: {len(vectors)} texts, nearest {nearest}, store of {dims - 2} dimensions, "
          f"kernels {caps['active']}")


if __name__ == "__main__":
    main()
