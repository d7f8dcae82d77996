"""Facts about the Perplexity Embeddings API that the codec relies on, in one place."""

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

#: Perplexity documents base64_binary as LSB-first: dimension j is bit j % 8 of byte j // 8.
API_BITORDER = "little"
BITORDERS = ("little", "big")
