"""Facts about the Perplexity Embeddings API that the codec relies on, in one place."""

from decimal import Decimal

#: Full embedding size of each model (Matryoshka ``dimensions`` may cut it down).
MODEL_DIMS = {
    "pplx-embed-v1-0.6b": 1024,
    "pplx-embed-v1-4b": 2560,
    "pplx-embed-context-v1-0.6b": 1024,
    "pplx-embed-context-v1-4b": 2560,
}

#: Smallest Matryoshka ``dimensions`` the API accepts.
MIN_DIMENSIONS = 128

#: ``encoding_format`` values and the short names the codec functions use.
ENCODINGS = {"base64_int8": "int8", "base64_binary": "binary"}
#: The short names alone, in the order a store keeps them.
ENCODING_NAMES = tuple(ENCODINGS.values())

#: Perplexity documents base64_binary as LSB-first: dimension j is bit j % 8 of byte j // 8.
API_BITORDER = "little"
BITORDERS = ("little", "big")

# --- what the service accepts and charges (API-NOTES.md, the OpenAPI spec) ---

#: Models of ``POST /v1/embeddings``, in the spec's enum order.
EMBEDDING_MODELS = ("pplx-embed-v1-0.6b", "pplx-embed-v1-4b")

#: Models of ``POST /v1/contextualizedembeddings``.
CONTEXTUALIZED_MODELS = ("pplx-embed-context-v1-0.6b", "pplx-embed-context-v1-4b")

#: The model of each endpoint when none is named (the smaller one).
DEFAULT_MODEL = EMBEDDING_MODELS[0]
DEFAULT_CONTEXTUALIZED_MODEL = CONTEXTUALIZED_MODELS[0]

#: USD per 1,000,000 input tokens.  Decimal so that cost arithmetic is exact
#: until the one conversion to a JSON number.
PRICE_PER_MILLION_TOKENS = {
    "pplx-embed-v1-0.6b": Decimal("0.004"),
    "pplx-embed-v1-4b": Decimal("0.03"),
    "pplx-embed-context-v1-0.6b": Decimal("0.008"),
    "pplx-embed-context-v1-4b": Decimal("0.05"),
}
CURRENCY = "USD"

#: Texts in one ``/v1/embeddings`` request.
MAX_INPUTS = 512
#: Tokens in one text (one document, for the contextualized endpoint).  The
#: docs say "32K"; the models are Qwen3 with a 32,768-token context, so 2**15.
MAX_INPUT_TOKENS = 32_768
#: Tokens in all the texts of one request, either endpoint.
MAX_REQUEST_TOKENS = 120_000
#: Documents in one contextualized request, and chunks over all of them.
MAX_DOCUMENTS = 512
MAX_CHUNKS = 16_000

# --- the client ---

#: Where the client sends requests unless told otherwise (or PERPLEXITY_BASE_URL).
DEFAULT_BASE_URL = "https://api.perplexity.ai"
#: Seconds: the whole request, and connecting (the official SDK's defaults).
DEFAULT_TIMEOUT = 900.0
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Requests in flight per call, unless max_concurrency says otherwise.
DEFAULT_MAX_CONCURRENCY = 4
#: Retries of a request after its first attempt (the official SDK's default).
DEFAULT_MAX_RETRIES = 2
#: Share of the request token limit a batch is planned to use: local counts
#: are estimates (pplx_codec.tokens), the margin absorbs their error.
TOKEN_BUDGET_SHARE = 0.8

# --- the corpus pipeline (``pplx-codec embed``) ---

#: Texts per resumable step (one store write): large enough to keep every request full.
EMBED_CHUNK = 4096
