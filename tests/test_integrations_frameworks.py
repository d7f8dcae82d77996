"""LlamaIndex and Haystack through their real pipeline objects, end to end
against the reference server over loopback (no other network: telemetry
off, no tokenizer download), and every adapter's floats and codes checked
against the same server's responses decoded by ``pplx_codec.decode_*``."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

import pplx_codec as pc
from framework_support import loopback_only, server_url  # noqa: F401  (the module's server fixture)
from helpers import raises_exactly
from pplx_codec.integrations._common import unit_floats
from server_support import AUTH, KEY

TEXTS = ["how to read a file line by line", "open a file for writing", "a lambda is a small function",
         "iterate over the lines of a text file", "exceptions and try statements"]
M = "pplx-embed-v1-0.6b"


def _response(url: str, texts: list[str], fmt: str, dimensions: int | None = None) -> list[str]:
    """The server's base64 strings, placed by ``index``: what every adapter must decode."""
    body = {"input": texts, "model": M, "encoding_format": fmt} | ({"dimensions": dimensions} if dimensions else {})
    r = httpx.post(url + "/v1/embeddings", headers=AUTH, json=body)
    r.raise_for_status()
    out = [""] * len(texts)
    for d in r.json()["data"]:
        out[d["index"]] = d["embedding"]
    return out


def _expected(url: str, texts: list[str], dimensions: int = 1024) -> np.ndarray:
    return unit_floats(pc.decode_int8(_response(url, texts, "base64_int8", dimensions), dimensions))


def _same(got, want: np.ndarray) -> None:
    """Lists of Python floats equal to the float32 unit rows, value for value."""
    a = np.asarray(got, dtype=np.float64)
    assert a.shape == want.shape
    assert np.array_equal(a.astype(np.float32), want) and np.array_equal(a, want.astype(np.float64))


# ---------------------------------------------------------------- the same floats through every adapter

def test_langchain_floats_are_the_decoded_rows(server_url):  # noqa: F811
    lc = pytest.importorskip("pplx_codec.integrations.langchain", reason="the langchain extra is not installed")
    e = lc.PerplexityEmbeddings(api_key=KEY, base_url=server_url, dimensions=512)
    want = _expected(server_url, TEXTS, 512)
    _same(e.embed_documents(TEXTS), want)
    _same(asyncio.run(e.aembed_documents(TEXTS)), want)
    _same([e.embed_query(TEXTS[0])], want[:1])
    _same([asyncio.run(e.aembed_query(TEXTS[0]))], want[:1])
    assert np.allclose(np.linalg.norm(want, axis=1), 1, atol=1e-6)


def test_llamaindex_floats_are_the_decoded_rows(server_url):  # noqa: F811
    li = pytest.importorskip("pplx_codec.integrations.llamaindex", reason="the llamaindex extra is not installed")
    e = li.PerplexityEmbedding(api_key=KEY, base_url=server_url)
    want = _expected(server_url, TEXTS)
    _same(e.get_text_embedding_batch(TEXTS), want)
    _same(asyncio.run(e.aget_text_embedding_batch(TEXTS)), want)
    _same([e.get_query_embedding(TEXTS[1])], want[1:2])
    _same([asyncio.run(e.aget_query_embedding(TEXTS[1]))], want[1:2])


def test_haystack_floats_are_the_decoded_rows(server_url):  # noqa: F811
    hs = pytest.importorskip("pplx_codec.integrations.haystack", reason="the haystack extra is not installed")
    from haystack import Document

    want = _expected(server_url, TEXTS)
    docs = hs.PerplexityDocumentEmbedder(api_key=_secret(), base_url=server_url, batch_size=2,
                                         progress_bar=False).run([Document(content=t) for t in TEXTS])["documents"]
    _same([d.embedding for d in docs], want)
    q = hs.PerplexityTextEmbedder(api_key=_secret(), base_url=server_url).run(TEXTS[3])
    _same([q["embedding"]], want[3:4])
    assert q["meta"] == {"model": M, "dimensions": 1024}


def _secret():
    from haystack.utils import Secret

    return Secret.from_token(KEY)


# ---------------------------------------------------------------- codes=: the server's LSB-first bits

def test_codes_store_keeps_the_servers_lsb_first_bits(server_url, tmp_path):  # noqa: F811
    lc = pytest.importorskip("pplx_codec.integrations.langchain", reason="the langchain extra is not installed")
    raw = pc.decode_binary(_response(server_url, TEXTS, "base64_binary"), 1024)   # (n, 128) packed LSB-first
    # a response whose bits differ under MSB-first unpacking (Haystack's own embedders' reading)
    assert not np.array_equal(np.unpackbits(raw, axis=1, bitorder="big"), np.unpackbits(raw, axis=1,
                                                                                          bitorder="little"))
    e = lc.PerplexityEmbeddings(api_key=KEY, base_url=server_url, codes=tmp_path / "codes")
    e.embed_documents(TEXTS[:3])
    e.embed_documents(TEXTS[2:])                      # a second call: only the new texts are embedded
    from pplx_codec import store

    s = store.load(tmp_path / "codes")
    assert list(s.texts) == TEXTS and s.bitorder == "little" and s.encodings == ("int8", "binary")
    int8 = pc.decode_int8(_response(server_url, TEXTS, "base64_int8"), 1024)
    assert np.array_equal(s.int8, int8)
    # the kept codes are the sign bits of the int8 rows: the server's own bits wherever the
    # int8 value is not 0 (a float that rounds to int8 0 keeps its sign only in the server's codes)
    mine = np.unpackbits(s.binary, axis=1, bitorder="little").astype(bool)
    theirs = np.unpackbits(raw, axis=1, bitorder="little").astype(bool)
    nonzero = int8 != 0
    assert np.array_equal(mine[nonzero], theirs[nonzero])
    assert not mine[~nonzero].any()
    assert np.array_equal(s.binary, pc.pack_bits(int8, "little"))


def test_codes_store_of_another_size_is_refused(server_url, tmp_path):  # noqa: F811
    lc = pytest.importorskip("pplx_codec.integrations.langchain", reason="the langchain extra is not installed")
    lc.PerplexityEmbeddings(api_key=KEY, base_url=server_url, codes=tmp_path / "c").embed_documents(TEXTS[:2])
    with pytest.raises(ValueError) as e:
        lc.PerplexityEmbeddings(api_key=KEY, base_url=server_url, codes=tmp_path / "c", dimensions=512)
    assert str(e.value) == (f"codes store {str(tmp_path / 'c')!r} holds pplx-embed-v1-0.6b at 1024 dimensions, "
                            "but this embedder uses pplx-embed-v1-0.6b at 512 dimensions: documents and queries "
                            "must be embedded with one model and one size (use another codes= directory)")


# ---------------------------------------------------------------- real pipelines, end to end

def test_llamaindex_vector_store_index(server_url):  # noqa: F811
    li = pytest.importorskip("pplx_codec.integrations.llamaindex", reason="the llamaindex extra is not installed")
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    emb = li.PerplexityEmbedding(api_key=KEY, base_url=server_url)
    # a word splitter: LlamaIndex's default tokenizer is tiktoken's, whose data it would download
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=0, tokenizer=str.split)
    with loopback_only():
        index = VectorStoreIndex.from_documents([Document(text=t) for t in TEXTS], embed_model=emb,
                                                transformations=[splitter])
        hits = index.as_retriever(similarity_top_k=2).retrieve("read a file line by line")
    assert hits[0].node.get_content() == TEXTS[0]
    # the ranking is int8 cosine's
    q = pc.decode_int8(_response(server_url, ["read a file line by line"], "base64_int8"), 1024)
    db = pc.decode_int8(_response(server_url, TEXTS, "base64_int8"), 1024)
    ix = pc.Int8Index(1024)
    ix.add(db)
    S, I = ix.search(q[0], 2)
    assert [h.node.get_content() for h in hits] == [TEXTS[i] for i in I]


def test_haystack_pipeline_with_in_memory_store(server_url, monkeypatch):  # noqa: F811
    hs = pytest.importorskip("pplx_codec.integrations.haystack", reason="the haystack extra is not installed")
    from haystack import Document, Pipeline
    from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    with loopback_only():
        ds = InMemoryDocumentStore(embedding_similarity_function="cosine")
        index = Pipeline()
        index.add_component("embed", hs.PerplexityDocumentEmbedder(api_key=_secret(), base_url=server_url,
                                                                   progress_bar=False))
        index.add_component("write", DocumentWriter(document_store=ds))
        index.connect("embed.documents", "write.documents")
        index.run({"embed": {"documents": [Document(content=t) for t in TEXTS]}})
        query = Pipeline()
        monkeypatch.setenv("PERPLEXITY_API_KEY", KEY)  # the default secret: from the environment, serializable
        query.add_component("embed", hs.PerplexityTextEmbedder(base_url=server_url))
        query.add_component("retrieve", InMemoryEmbeddingRetriever(document_store=ds, top_k=2))
        query.connect("embed.embedding", "retrieve.query_embedding")
        got = query.run({"embed": {"text": "read a file line by line"}})["retrieve"]["documents"]
    assert ds.count_documents() == len(TEXTS)
    assert got[0].content == TEXTS[0]
    # serializable as Haystack pipelines are (loading needs the module on Haystack's allowlist)
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", "pplx_codec.integrations.*")
    again = Pipeline.loads(query.dumps())
    assert isinstance(again.get_component("embed"), hs.PerplexityTextEmbedder)
    with loopback_only():
        assert again.run({"embed": {"text": "read a file line by line"}})["retrieve"]["documents"] == got


# ---------------------------------------------------------------- refusals and edges

def test_haystack_refusals(server_url):  # noqa: F811
    hs = pytest.importorskip("pplx_codec.integrations.haystack", reason="the haystack extra is not installed")
    from haystack import Document

    with raises_exactly(ValueError, "batch_size must be a positive integer, got 0"):
        hs.PerplexityDocumentEmbedder(api_key=_secret(), base_url=server_url, batch_size=0)
    docs = hs.PerplexityDocumentEmbedder(api_key=_secret(), base_url=server_url, progress_bar=False)
    with raises_exactly(TypeError, "PerplexityDocumentEmbedder expects a list of Documents "
                                   "(a str: PerplexityTextEmbedder)"):
        docs.run("a query")
    with raises_exactly(TypeError, "PerplexityTextEmbedder expects a str (documents: PerplexityDocumentEmbedder)"):
        hs.PerplexityTextEmbedder(api_key=_secret(), base_url=server_url).run([Document(content="x")])
    assert docs.run([]) == {"documents": [], "meta": {"model": M, "dimensions": 1024}}
    with raises_exactly(ValueError, "dimensions must be in 128..1024 for pplx-embed-v1-0.6b, got 64"):
        hs.PerplexityTextEmbedder(api_key=_secret(), base_url=server_url, dimensions=64)


def test_haystack_meta_fields_and_async(server_url):  # noqa: F811
    hs = pytest.importorskip("pplx_codec.integrations.haystack", reason="the haystack extra is not installed")
    from haystack import Document

    e = hs.PerplexityDocumentEmbedder(api_key=_secret(), base_url=server_url, meta_fields_to_embed=["title"],
                                      prefix="doc: ", progress_bar=False)
    docs = [Document(content="body one", meta={"title": "First"}), Document(content="body two")]
    want = _expected(server_url, ["doc: First\nbody one", "doc: body two"])
    _same([d.embedding for d in e.run(docs)["documents"]], want)
    _same([d.embedding for d in asyncio.run(e.run_async(docs))["documents"]], want)
    assert docs[0].embedding is None                    # the input documents are not changed


def test_llamaindex_settings(server_url, tmp_path):  # noqa: F811
    li = pytest.importorskip("pplx_codec.integrations.llamaindex", reason="the llamaindex extra is not installed")
    e = li.PerplexityEmbedding(api_key=KEY, base_url=server_url, dimensions=256, codes=tmp_path / "codes")
    assert (e.model_name, e.dimensions, e.embed_batch_size) == (M, 256, 512)
    _same(e.get_text_embedding_batch(TEXTS), _expected(server_url, TEXTS, 256))
    from pplx_codec import store

    assert list(store.load(tmp_path / "codes").texts) == TEXTS
    e.get_query_embedding("a query is never kept")
    assert store.load(tmp_path / "codes").count == len(TEXTS)
    with raises_exactly(ValueError, "dimensions must be a multiple of 8 for binary codes, got 130"):
        li.PerplexityEmbedding(api_key=KEY, base_url=server_url, dimensions=130, codes=tmp_path / "other")


def test_langchain_empty_and_repeats(server_url):  # noqa: F811
    lc = pytest.importorskip("pplx_codec.integrations.langchain", reason="the langchain extra is not installed")
    e = lc.PerplexityEmbeddings(api_key=KEY, base_url=server_url)
    assert e.embed_documents([]) == [] and asyncio.run(e.aembed_documents([])) == []
    got = e.embed_documents([TEXTS[0], TEXTS[1], TEXTS[0]])
    assert got[0] == got[2] != got[1]
    with raises_exactly(TypeError, "texts must be a list of str, got str"):
        e.embed_documents("not a list")


def test_haystack_query_embedder_refuses_the_documents_other_size(server_url, tmp_path):  # noqa: F811
    hs = pytest.importorskip("pplx_codec.integrations.haystack", reason="the haystack extra is not installed")
    from haystack import Document

    hs.PerplexityDocumentEmbedder(api_key=_secret(), base_url=server_url, codes=tmp_path / "docs",
                                  progress_bar=False).run([Document(content=t) for t in TEXTS])
    with raises_exactly(ValueError, f"codes store {str(tmp_path / 'docs')!r} holds pplx-embed-v1-0.6b at 1024 "
                                    "dimensions, but this embedder uses pplx-embed-v1-0.6b at 512 dimensions: "
                                    "documents and queries must be embedded with one model and one size (use "
                                    "another codes= directory)"):
        hs.PerplexityTextEmbedder(api_key=_secret(), base_url=server_url, codes=tmp_path / "docs", dimensions=512)
    q = hs.PerplexityTextEmbedder(api_key=_secret(), base_url=server_url, codes=tmp_path / "docs")
    q.run("a query")
    from pplx_codec import store

    assert list(store.load(tmp_path / "docs").texts) == TEXTS     # the query was not kept


def test_codes_store_of_another_endpoint_is_refused_unless_named(tmp_path):
    """A reference server restarted on another port: refused by URL, accepted under one name."""
    lc = pytest.importorskip("pplx_codec.integrations.langchain", reason="the langchain extra is not installed")
    from pplx_codec.server import running

    urls = []
    for run in range(2):
        with loopback_only(), running(api_keys=[KEY], backend="hash") as url:
            urls.append(url)
            lc.PerplexityEmbeddings(api_key=KEY, base_url=url, codes=tmp_path / "named",
                                    endpoint="local hash server").embed_documents([TEXTS[0], TEXTS[run + 1]])
            if run == 0:
                lc.PerplexityEmbeddings(api_key=KEY, base_url=url, codes=tmp_path / "by-url").embed_documents(TEXTS)
            else:
                with raises_exactly(ValueError, f"codes store {str(tmp_path / 'by-url')!r} was filled from "
                                                f"{urls[0]!r}, but this embedder embeds at {url!r}: a store never "
                                                "mixes two services' vectors (name a service that moved with "
                                                "endpoint=, e.g. a reference server restarted on another port, or "
                                                "use another codes= directory)"):
                    lc.PerplexityEmbeddings(api_key=KEY, base_url=url, codes=tmp_path / "by-url")
    from pplx_codec import store

    assert list(store.load(tmp_path / "named").texts) == TEXTS[:3]
