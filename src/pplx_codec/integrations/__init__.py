"""Framework adapters, one module a framework, each behind its own extra:
``pplx_codec.integrations.langchain`` (``pip install 'pplx-codec[langchain]'``:
``PerplexityEmbeddings``, ``PerplexityVectorStore``),
``pplx_codec.integrations.llamaindex`` (``[llamaindex]``:
``PerplexityEmbedding``) and ``pplx_codec.integrations.haystack``
(``[haystack]``: ``PerplexityDocumentEmbedder``, ``PerplexityTextEmbedder``).

All of them are backed by :class:`pplx_codec.Client` /
:class:`pplx_codec.AsyncClient`.  Importing this package imports no framework.
"""
