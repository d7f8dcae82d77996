"""LangChain: the standard suites every LangChain integration is held to
(langchain-tests), run against the reference server over loopback, and the
correctness of what the adapters hand over."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
pytest.importorskip("langchain_tests", reason="langchain-tests (the test extra) is not installed")

import numpy as np  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings  # noqa: E402
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, VectorStoreIntegrationTests  # noqa: E402
from langchain_tests.unit_tests import EmbeddingsUnitTests  # noqa: E402

import pplx_codec as pc  # noqa: E402
from framework_support import server_url  # noqa: E402, F401  (the module's server fixture)
from helpers import raises_exactly  # noqa: E402
from pplx_codec import store  # noqa: E402
from pplx_codec.integrations._docstore import quantize_floats  # noqa: E402
from pplx_codec.integrations.langchain import PerplexityEmbeddings, PerplexityVectorStore  # noqa: E402
from server_support import KEY  # noqa: E402

_SERVER: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _serve(server_url):  # noqa: F811
    _SERVER["url"] = server_url


def _params() -> dict:
    return {"api_key": KEY, "base_url": _SERVER["url"]}


class TestEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return PerplexityEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return _params()

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return ({"PERPLEXITY_API_KEY": "key-from-env", "PERPLEXITY_BASE_URL": "http://127.0.0.1:9"}, {},
                {"base_url": "http://127.0.0.1:9"})


class TestEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[Embeddings]:
        return PerplexityEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return _params()


class TestVectorStoreFakeEmbeddings(VectorStoreIntegrationTests):
    """The suite's own 6-dimensional fake embeddings, quantized by the store
    (rows padded to 8 dimensions), in memory."""

    @pytest.fixture()
    def vectorstore(self):
        return PerplexityVectorStore(self.get_embeddings())


class TestVectorStorePersisted(VectorStoreIntegrationTests):
    """The same, kept in a store directory (rewritten at each add, its
    tombstone mask at each delete)."""

    @pytest.fixture()
    def vectorstore(self, tmp_path):
        return PerplexityVectorStore(self.get_embeddings(), path=tmp_path / "store")


class TestVectorStorePerplexity(VectorStoreIntegrationTests):
    """PerplexityEmbeddings over the reference server: int8 rows and codes
    straight from the client, exact int8 search."""

    @staticmethod
    def get_embeddings() -> Embeddings:
        return PerplexityEmbeddings(**_params())

    @pytest.fixture()
    def vectorstore(self, tmp_path):
        return PerplexityVectorStore(self.get_embeddings(), path=tmp_path / "store", exact=True)


# ---------------------------------------------------------------- PerplexityVectorStore: beyond the suite




def test_quantize_floats_as_the_api_does():
    x = np.array([[0.5, -1.0, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0], [3.0, 1.5, -0.75, 1e-9]])
    assert quantize_floats(x).tolist() == [[64, -127, 32, 0], [0, 0, 0, 0], [127, 64, -32, 0]]
    assert quantize_floats(np.empty((0, 3))).shape == (0, 3)


@pytest.mark.parametrize(("x", "message"), [
    ([[1.0, float("nan")]], "embedding 0 has a non-finite value (NaN or infinity): it cannot be quantized"),
    ([[1.0, 2.0], [float("inf"), 0.0]], "embedding 1 has a non-finite value (NaN or infinity): it cannot be quantized"),
    ([1.0, 2.0], "embeddings must be a list of vectors, got an array of shape (2,)"),
])
def test_quantize_floats_refuses(x, message):
    with raises_exactly(ValueError, message):
        quantize_floats(x)


def test_ragged_floats_are_refused():
    with pytest.raises(ValueError, match="^embeddings must be rows of one length"):
        quantize_floats([[1.0, 2.0], [1.0]])


def _cosines(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    r, q = rows.astype(np.float64), q.astype(np.float64)
    return r @ q / (np.linalg.norm(r, axis=1) * np.linalg.norm(q))


@pytest.mark.parametrize("exact", [False, True])
def test_padded_rows_score_as_their_int8_cosine(exact):
    """6-dimensional rows padded to 8: scores are the cosines of the quantized rows themselves."""
    emb = DeterministicFakeEmbedding(size=6)
    texts = [f"text {i}" for i in range(40)]
    vs = PerplexityVectorStore.from_texts(texts, emb, exact=exact, rescore=100)
    rows = quantize_floats(emb.embed_documents(texts))
    q = quantize_floats([emb.embed_query("text 7")])[0]
    want = _cosines(rows, q)
    got = vs.similarity_search_with_score("text 7", k=40)
    assert [d.page_content for d, _ in got][0] == "text 7"
    for d, s in got:
        assert s == pytest.approx(want[texts.index(d.page_content)], abs=1e-6)
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)


@pytest.mark.parametrize("exact", [False, True])
def test_ties_go_to_the_row_added_first(exact):
    vs = PerplexityVectorStore(DeterministicFakeEmbedding(size=16), exact=exact)
    vs.add_texts(["same", "other", "same"], ids=["a", "b", "c"])
    got = vs.similarity_search_with_score("same", k=3)
    assert [d.id for d, _ in got][:2] == ["a", "c"] and got[0][1] == got[1][1]


def test_persisted_store_reopens_with_its_tombstones(tmp_path):
    emb = DeterministicFakeEmbedding(size=12)
    vs = PerplexityVectorStore(emb, path=tmp_path / "vs")
    vs.add_texts(["alpha", "beta", "gamma", "delta"], [{"n": i} for i in range(4)], ids=list("abcd"))
    vs.delete(["b"])
    s = store.load(tmp_path / "vs")
    assert s.deleted.tolist() == [False, True, False, False] and s.ids == list("abcd") and s.dimensions == 16
    again = PerplexityVectorStore.load(tmp_path / "vs", emb)
    assert len(again) == 3
    assert again.get_by_ids(["d", "b", "a"]) == vs.get_by_ids(["d", "a"])
    assert again.similarity_search_with_score("gamma", k=4) == vs.similarity_search_with_score("gamma", k=4)
    assert "beta" not in [d.page_content for d in again.similarity_search("beta", k=4)]
    again.add_texts(["epsilon"], ids=["e"])            # a rewrite: the tombstoned row is dropped
    s = store.load(tmp_path / "vs")
    assert s.ids == ["a", "c", "d", "e"] and s.deleted.tolist() == [False] * 4
    assert s.metadata == [{"n": 0}, {"n": 2}, {"n": 3}, {}]


def test_reopening_with_another_embedding_is_refused(tmp_path, server_url):  # noqa: F811
    e = PerplexityEmbeddings(api_key=KEY, base_url=server_url)
    PerplexityVectorStore.from_texts(["a file", "a lambda"], e, path=tmp_path / "vs")
    other = PerplexityEmbeddings(api_key=KEY, base_url=server_url, dimensions=512)
    with raises_exactly(ValueError, f"{tmp_path / 'vs'} holds rows of PerplexityEmbeddings pplx-embed-v1-0.6b at 1024 "
                                    "dimensions, but the embedding given is PerplexityEmbeddings pplx-embed-v1-0.6b "
                                    "at 512 dimensions: queries must be embedded as the documents were"):
        PerplexityVectorStore.load(tmp_path / "vs", other)
    with raises_exactly(ValueError, f"{tmp_path / 'vs'} holds rows of PerplexityEmbeddings pplx-embed-v1-0.6b at 1024 "
                                    "dimensions, but the embedding given is DeterministicFakeEmbedding at 1024 "
                                    "dimensions: queries must be embedded as the documents were"):
        PerplexityVectorStore.load(tmp_path / "vs", DeterministicFakeEmbedding(size=1024))
    vs = PerplexityVectorStore.load(tmp_path / "vs", e)
    with raises_exactly(ValueError, "the query has shape (512,) (int8) but this store's rows have 1024 dimensions: "
                                    "queries and documents must be embedded alike"):
        vs.similarity_search_by_vector([0.5] * 512)


def test_a_store_of_other_rows_is_not_a_vector_store(tmp_path):
    store.save(tmp_path / "plain", int8=np.ones((2, 8), np.int8), texts=["a", "b"])
    with raises_exactly(ValueError, f"{tmp_path / 'plain'}: neither a PerplexityVectorStore directory (meta.json has "
                                    "no valid 'embedding' and 'vector_dimensions') nor a store of a Perplexity "
                                    "model's rows (its model is None)"):
        PerplexityVectorStore.load(tmp_path / "plain", DeterministicFakeEmbedding(size=8))
    store.save(tmp_path / "int8", int8=np.ones((2, 128), np.int8), texts=["a", "b"],
               meta={"model": "pplx-embed-v1-0.6b"})
    with raises_exactly(ValueError, f"{tmp_path / 'int8'}: a vector store needs int8 rows, binary codes and texts; "
                                    "this store has int8 and texts"):
        PerplexityVectorStore.load(tmp_path / "int8", DeterministicFakeEmbedding(size=8))


def test_a_retriever_over_the_pydoc_topics_store_answers_as_pplx_codec_search(tmp_path):
    """The store `pplx-codec embed` makes of the built-in corpus (embedded default: the static
    backend), opened as a LangChain retriever: the same top-5 as `pplx-codec search`."""
    from pplx_codec.corpus import read_texts
    from pplx_codec.pipelines import embed_corpus, search_store
    from pplx_codec.server import running

    query = "read a file line by line"
    with running(api_keys=[KEY], backend="static") as url, pc.Client(api_key=KEY, base_url=url) as client:
        embed_corpus(client, read_texts("pydoc-topics"), str(tmp_path / "pydoc"), progress=False)
        hits, _ = search_store(client, str(tmp_path / "pydoc"), query, k=5)
        before = sorted(p.name for p in (tmp_path / "pydoc").iterdir())
        vs = PerplexityVectorStore.load(tmp_path / "pydoc", PerplexityEmbeddings(api_key=KEY, base_url=url))
        docs = vs.as_retriever(search_kwargs={"k": 5}).invoke(query)
        scored = vs.similarity_search_with_score(query, k=5)
    assert [d.page_content for d in docs] == [h.text for h in hits]
    assert [d.id for d in docs] == [str(h.row) for h in hits]
    assert [s for _, s in scored] == [h.score for h in hits]
    assert sorted(p.name for p in (tmp_path / "pydoc").iterdir()) == before   # the embed store is untouched


def test_perplexity_rows_are_the_apis_int8_and_bits(tmp_path, server_url):  # noqa: F811
    """No float round trip: the store's rows are the decoded response, its codes their LSB-first sign bits."""
    import httpx

    texts = ["read a file", "write a file", "sort a list"]
    r = httpx.post(server_url + "/v1/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                   json={"input": texts, "model": "pplx-embed-v1-0.6b", "encoding_format": "base64_int8"})
    want = pc.decode_int8([d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])], 1024)
    e = PerplexityEmbeddings(api_key=KEY, base_url=server_url)
    PerplexityVectorStore.from_texts(texts, e, path=tmp_path / "vs")
    s = store.load(tmp_path / "vs")
    assert np.array_equal(s.int8, want) and np.array_equal(s.binary, pc.pack_bits(want, "little"))
    assert s.bitorder == "little" and s.model == "pplx-embed-v1-0.6b"


async def test_async_paths(server_url):  # noqa: F811
    e = PerplexityEmbeddings(api_key=KEY, base_url=server_url)
    vs = await PerplexityVectorStore.afrom_texts(["read a file", "sort a list"], e, ids=["r", "s"])
    got = await vs.asimilarity_search_with_score("read a file", k=1)
    assert got[0][0].id == "r" and got[0][1] == pytest.approx(1.0)
    assert [d.id for d in await vs.amax_marginal_relevance_search("read", k=2)] == ["r", "s"]
    assert await vs.adelete(["r"]) and [d.id for d in await vs.aget_by_ids(["r", "s"])] == ["s"]


def test_replaced_rows_do_not_pile_up_in_memory():
    vs = PerplexityVectorStore(DeterministicFakeEmbedding(size=8))
    for i in range(50):
        vs.add_texts([f"version {i}", "other"], ids=["doc", "other"])
    rows = vs._rows
    assert rows is not None and len(rows) == 2 and rows.ntotal <= 4
    assert [d.page_content for d in vs.get_by_ids(["doc", "other"])] == ["version 49", "other"]
    assert vs.similarity_search("version 49", k=1)[0].id == "doc"
