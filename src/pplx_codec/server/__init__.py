"""The reference server: Perplexity's Embeddings API, spec-exact, on loopback.

``POST /v1/embeddings`` and ``POST /v1/contextualizedembeddings`` as the
OpenAPI spec and API-NOTES.md describe them (bodies, 422s, usage and cost,
bearer auth), with real semantic vectors from the shipped ``static`` model
(the default; numpy and ``tokenizers`` only), a word-exact ``hash`` backend, or
a local sentence-transformers model, token counts estimated or exact, streamed
responses, and optional fault injection.  Needs the ``server`` extra.

    from pplx_codec.server import running
    with running(api_keys=["test-key"]) as url:   # http://127.0.0.1:<free port>
        ...

    pplx-codec serve --port 8000 --api-key KEY     # the same from the shell
"""

from .app import create_app
from .config import ServerConfig
from .faults import FaultConfig
from .received import ReceivedInputs
from .runner import running, serve_socket

__all__ = ["create_app", "ServerConfig", "FaultConfig", "ReceivedInputs", "running", "serve_socket"]
