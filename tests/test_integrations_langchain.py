"""LangChain: the standard suites every LangChain integration is held to
(langchain-tests), run against the reference server over loopback, and the
correctness of what the adapters hand over."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
pytest.importorskip("langchain_tests", reason="langchain-tests (the test extra) is not installed")

from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, VectorStoreIntegrationTests  # noqa: E402
from langchain_tests.unit_tests import EmbeddingsUnitTests  # noqa: E402

from framework_support import server_url  # noqa: E402, F401  (the module's server fixture)
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
    """The same, kept in a store directory, each test's store reopened from it
    before the suite's checks would see a stale copy."""

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
