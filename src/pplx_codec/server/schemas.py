"""Request and response bodies, as pydantic models whose JSON schemas are the
seed spec's (``perplexity-embeddings-openapi.yaml``) key for key, plus the
contextualized endpoint's from API-NOTES.md and Perplexity's API reference.

Request models validate (FastAPI turns their errors into 422s).  Response
models are never instantiated: bodies are streamed row by row (bodies.py);
the models only document them in ``/openapi.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from ..constants import (
    CONTEXTUALIZED_MODELS,
    CURRENCY,
    EMBEDDING_MODELS,
    ENCODINGS,
    MAX_DOCUMENTS,
    MAX_INPUTS,
    MIN_DIMENSIONS,
    MODEL_DIMS,
)

_DIMENSIONS_MAX = max(MODEL_DIMS.values())


def _field(title: str, description: str | None = None, default: Any = None, **extra: Any) -> Any:
    """A field that is optional in the body but has no ``default`` in the schema
    (the spec's response fields and ``dimensions`` have none); ``extra`` goes
    into the schema as is (``example`` is OpenAPI's keyword, not pydantic's
    ``examples``)."""

    def schema_extra(schema: dict[str, Any]) -> None:
        schema.pop("default", None)
        schema.update(extra)

    return Field(default, title=title, description=description, json_schema_extra=schema_extra)


def _no_default(schema: dict[str, Any]) -> None:
    """Drop the ``default`` pydantic puts in a field's schema."""
    schema.pop("default", None)


Text = Annotated[str, StringConstraints(strict=True, min_length=1)]


def _one_or_many(value: Any) -> Any:
    # the spec's oneOf(string, array of strings): one string is one input.
    # An empty lone string is reported at ("input",), not ("input", 0).
    if isinstance(value, str):
        if not value:
            raise PydanticCustomError("string_too_short", "String should have at least 1 character",
                                      {"min_length": 1})
        return [value]
    if not isinstance(value, list):
        raise PydanticCustomError("string_or_array_type", "Input should be a string or an array of strings")
    return value


def _integral(value: Any) -> Any:
    # JSON Schema counts 256.0 as an integer; pydantic's strict int would not
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_TEXT_SCHEMA = {"type": "string", "minLength": 1}

Inputs = Annotated[
    list[Text],
    Field(min_length=1, max_length=MAX_INPUTS),
    BeforeValidator(_one_or_many),
    WithJsonSchema({"oneOf": [_TEXT_SCHEMA, {"type": "array", "items": _TEXT_SCHEMA,
                                            "minItems": 1, "maxItems": MAX_INPUTS}]}),
]
Documents = Annotated[list[Annotated[list[Text], Field(min_length=1)]], Field(min_length=1, max_length=MAX_DOCUMENTS)]
Dimensions = Annotated[int, Field(strict=True, ge=MIN_DIMENSIONS, le=_DIMENSIONS_MAX), BeforeValidator(_integral)]
if TYPE_CHECKING:  # a Literal built at run time is no type to a type checker
    EncodingFormat = str
else:
    EncodingFormat = Literal[tuple(ENCODINGS)]

_DIMENSIONS_DOC = ("Number of dimensions for output embeddings (Matryoshka). Range: 128-{small} for {m0}, "
                   "128-{large} for {m1}. Defaults to full dimensions ({small} or {large}).")
_ENCODING_DOC = ("Output encoding format for embeddings. base64_int8 returns base64-encoded signed int8 values. "
                 "base64_binary returns base64-encoded packed binary (1 bit per dimension).")


def _dimensions_doc(models: tuple[str, str]) -> str:
    return _DIMENSIONS_DOC.format(small=MODEL_DIMS[models[0]], large=MODEL_DIMS[models[1]], m0=models[0], m1=models[1])


class _Request(BaseModel):
    # strict: "5" is not a number and 5 is not a string, as in JSON Schema;
    # unknown keys are ignored (the spec does not forbid them)
    model_config = ConfigDict(strict=True)

    if TYPE_CHECKING:  # the fields every request model declares (with its own models), for the methods here
        model: str
        dimensions: int | None

    @field_validator("dimensions", check_fields=False)
    @classmethod
    def _dimensions_fit_model(cls, value: int, info: ValidationInfo) -> int:
        model = info.data.get("model")  # absent when the model itself was invalid
        if model is not None and value > MODEL_DIMS[model]:
            raise PydanticCustomError(
                "less_than_equal", "Input should be less than or equal to {le} for model {model}",
                {"le": MODEL_DIMS[model], "model": model})
        return value

    def output_dimensions(self) -> int:
        return self.dimensions if self.dimensions is not None else MODEL_DIMS[self.model]


class EmbeddingsRequest(_Request):
    """Request body for creating embeddings"""

    model_config = ConfigDict(title="Embeddings Request")

    input: Inputs = Field(
        title="Input",
        description="Input text to embed, encoded as a string or array of strings. Maximum 512 texts per request. "
                    "Each input must not exceed 32K tokens. All inputs in a single request must not exceed "
                    "120,000 tokens combined. Empty strings are not allowed.")
    model: Literal[EMBEDDING_MODELS] = Field(  # type: ignore[valid-type]
        title="Model", description="The embedding model to use")
    dimensions: Dimensions = _field("Dimensions", _dimensions_doc(EMBEDDING_MODELS))
    encoding_format: EncodingFormat = Field("base64_int8", title="Encoding Format", description=_ENCODING_DOC)


class ContextualizedEmbeddingsRequest(_Request):
    """Request body for creating contextualized embeddings"""

    model_config = ConfigDict(title="Contextualized Embeddings Request")

    input: Documents = Field(
        title="Input",
        description="Nested array structure where each inner array contains chunks from a single document. "
                    "Chunks within the same document are encoded with document-level context awareness. "
                    "Maximum 512 documents. Total chunks across all documents must not exceed 16,000. Total "
                    "tokens per document must not exceed 32K. All chunks in a single request must not exceed "
                    "120,000 tokens combined. Empty strings are not allowed.")
    model: Literal[CONTEXTUALIZED_MODELS] = Field(  # type: ignore[valid-type]
        title="Model", description="The contextualized embedding model to use")
    dimensions: Dimensions = _field("Dimensions", _dimensions_doc(CONTEXTUALIZED_MODELS))
    encoding_format: EncodingFormat = Field("base64_int8", title="Encoding Format", description=_ENCODING_DOC)


# --- responses (schema only) ---

_COST_SCHEMA = {
    "type": "object",
    "properties": {
        "input_cost": {"type": "number", "title": "Input Cost", "description": "Cost for input tokens in USD"},
        "total_cost": {"type": "number", "title": "Total Cost", "description": "Total cost for the request in USD"},
        "currency": {"type": "string", "title": "Currency", "description": "Currency of the cost values",
                     "enum": [CURRENCY]},
    },
}


class EmbeddingObject(BaseModel):
    """A single embedding result"""

    model_config = ConfigDict(title="Embedding Object")

    object: str = _field("Object", "The object type", example="embedding")
    index: int = _field("Index", "The index of the input text this embedding corresponds to")
    embedding: str = _field(
        "Embedding", "Base64-encoded embedding vector. For base64_int8: decode to signed int8 array (length = "
                     "dimensions). For base64_binary: decode to packed bits (length = dimensions / 8 bytes).")


class EmbeddingsUsage(BaseModel):
    """Token usage for the embeddings request"""

    model_config = ConfigDict(title="Embeddings Usage")

    prompt_tokens: int = _field("Prompt Tokens", "Number of tokens in the input texts")
    total_tokens: int = _field("Total Tokens", "Total number of tokens processed")
    # inline in the spec, not a component of its own
    cost: Annotated[dict[str, Any], WithJsonSchema(_COST_SCHEMA)] = _field(
        "Cost", "Cost breakdown for the request")


class EmbeddingsResponse(BaseModel):
    """Response body for embeddings request"""

    model_config = ConfigDict(title="Embeddings Response")

    object: str = _field("Object", "The object type", example="list")
    data: list[EmbeddingObject] = _field("Data", "List of embedding objects")
    model: str = _field("Model", "The model used to generate embeddings")
    # may be absent, yet not nullable in the spec: a None default, not an Optional type
    usage: EmbeddingsUsage = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]


class ContextualizedEmbeddingObject(BaseModel):
    """A single contextualized embedding result"""

    model_config = ConfigDict(title="Contextualized Embedding Object")

    object: str = _field("Object", "The object type", example="list")
    index: int = _field("Index", "The index of the document this chunk belongs to")
    data: list[EmbeddingObject] = _field("Data", "List of embedding objects for chunks in this document")


class ContextualizedEmbeddingsResponse(BaseModel):
    """Response body for contextualized embeddings request"""

    model_config = ConfigDict(title="Contextualized Embeddings Response")

    object: str = _field("Object", "The object type", example="list")
    data: list[ContextualizedEmbeddingObject] = _field("Data", "List of contextualized embedding objects")
    model: str = _field("Model", "The model used to generate embeddings")
    # may be absent, yet not nullable in the spec: a None default, not an Optional type
    usage: EmbeddingsUsage = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]


# One 422 detail item: what FastAPI reports, without ``input`` (which would echo
# up to megabytes of text back) and ``ctx``, as the spec shows it.  (No docstring:
# it would become a description the spec's schema does not have.)
class ValidationError(BaseModel):
    model_config = ConfigDict(title="ValidationError")

    loc: list[str | int] = Field(title="Location")
    msg: str = Field(title="Message")
    type: str = Field(title="Error Type")


class HTTPValidationError(BaseModel):
    model_config = ConfigDict(title="HTTPValidationError")

    # may be absent, yet not nullable in the spec: a None default, not an Optional type
    detail: list[ValidationError] = Field(None, title="Detail", json_schema_extra=_no_default)  # type: ignore[arg-type]
