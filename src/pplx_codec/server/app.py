"""The FastAPI application: both endpoints, 422s in the spec's shape, the OpenAPI document."""

from __future__ import annotations

import logging
import os
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..constants import CURRENCY, MAX_CHUNKS, MAX_INPUT_TOKENS, MAX_REQUEST_TOKENS, PRICE_PER_MILLION_TOKENS
from .backends import make_backend
from .bodies import contextualized_body, embeddings_body
from .cache import LRU
from .config import CONFIG_ENV, ServerConfig
from .faults import FAULT_HEADER, FAULT_SCOPE_KEY, DropFilter, Fault, FaultPlan
from .guards import BearerAuth, BodyLimit, InjectFaults, error_body
from .ratelimit import RateLimit
from .received import ReceivedInputs
from .schemas import (
    ContextualizedEmbeddingsRequest,
    ContextualizedEmbeddingsResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ValidationError,
)
from .token_counts import load_counter

log = logging.getLogger("pplx_codec.server")

_NO_FAULT = Fault(None, -1, 0)
_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large",
                500: "internal_server_error"}


def usage(model: str, tokens: int) -> dict:
    """``usage`` for ``tokens`` input tokens: the price table's cost, exact until the one float conversion."""
    cost = float(Decimal(tokens) * PRICE_PER_MILLION_TOKENS[model] / 1_000_000)
    return {"prompt_tokens": tokens, "total_tokens": tokens,
            "cost": {"input_cost": cost, "total_cost": cost, "currency": CURRENCY}}


def _too_many(loc: list, what: str, count: int, limit: int, estimated: bool) -> dict:
    how = " (estimated: the Qwen3 tokenizer is not available offline)" if estimated and "token" in what else ""
    return {"loc": loc, "type": f"too_many_{what.replace(' ', '_')}",
            "msg": f"{count} {what}{how}; the limit is {limit}"}


def create_app(config: ServerConfig | None = None, *, received: ReceivedInputs | None = None,
               **options) -> FastAPI:
    """The app for ``config`` (or ``ServerConfig(**options)``): loads the backend and the token counter now.
    ``received``: where to record the inputs each request to an endpoint carried
    (received.py; ``config.request_log`` is the file log of every API request, ratelimit.py)."""
    if config is None:
        config = ServerConfig(**options)
    elif options:
        raise TypeError("pass either a ServerConfig or its fields, not both")
    keys = config.accepted_keys()
    backend = make_backend(config.backend, model_path=config.model_path, trust_remote_code=config.trust_remote_code,
                           output_scale=config.output_scale)
    counter = load_counter(config.tokenizer_path(), config.cache_bytes // 4)
    row_cache = LRU(config.cache_bytes)
    estimated = counter.method == "estimate"
    slow_seconds = config.faults.slow_seconds

    app = FastAPI(title="Perplexity AI API", version="1.0.0",
                  description="Perplexity AI API (the pplx-codec reference server)",
                  docs_url=None, redoc_url=None)  # the docs pages load their scripts from a CDN
    app.state.config, app.state.backend, app.state.counter = config, backend, counter
    security: dict[str, Any] | None = {"security": [{"HTTPBearer": []}]} if config.auth else None

    def headers(fault: Fault) -> dict:
        h = {"x-token-count": counter.method}
        if fault.mode is not None:
            h[FAULT_HEADER] = fault.mode
        return h

    @app.post("/v1/embeddings", response_model=EmbeddingsResponse, summary="Create Embeddings",
              description="Generate embeddings for a list of texts. Use these embeddings for semantic search, "
                          "clustering, and other machine learning applications.",
              openapi_extra=security)
    async def embeddings(body: EmbeddingsRequest, request: Request):
        if received is not None:
            received.add("/v1/embeddings", body.input)
        counts = await run_in_threadpool(counter.count, body.input)
        errors = [_too_many(["body", "input", i], "tokens", n, MAX_INPUT_TOKENS, estimated)
                  for i, n in enumerate(counts) if n > MAX_INPUT_TOKENS]
        total = sum(counts)
        if total > MAX_REQUEST_TOKENS:
            errors.append(_too_many(["body", "input"], "tokens in the request", total, MAX_REQUEST_TOKENS,
                                    estimated))
        if errors:
            raise RequestValidationError(errors)
        fault = request.scope.get(FAULT_SCOPE_KEY, _NO_FAULT)
        stream = embeddings_body(backend, row_cache, body.model, body.input, body.output_dimensions(),
                                 body.encoding_format, usage(body.model, total), fault, slow_seconds)
        return StreamingResponse(stream, media_type="application/json", headers=headers(fault))

    @app.post("/v1/contextualizedembeddings", response_model=ContextualizedEmbeddingsResponse,
              summary="Create Contextualized Embeddings",
              description="Generate contextualized embeddings for document chunks. Chunks from the same document "
                          "share context awareness, improving retrieval quality for document-based applications.",
              openapi_extra=security)
    async def contextualized_embeddings(body: ContextualizedEmbeddingsRequest, request: Request):
        if received is not None:
            received.add("/v1/contextualizedembeddings", body.input)
        docs = body.input
        chunks = sum(len(d) for d in docs)
        errors = []
        if chunks > MAX_CHUNKS:
            errors.append(_too_many(["body", "input"], "chunks", chunks, MAX_CHUNKS, estimated))
        flat = await run_in_threadpool(counter.count, [c for d in docs for c in d])
        per_doc, start = [], 0
        for d, doc in enumerate(docs):
            per_doc.append(sum(flat[start:start + len(doc)]))
            start += len(doc)
            if per_doc[-1] > MAX_INPUT_TOKENS:
                errors.append(_too_many(["body", "input", d], "tokens in the document", per_doc[-1],
                                        MAX_INPUT_TOKENS, estimated))
        total = sum(per_doc)
        if total > MAX_REQUEST_TOKENS:
            errors.append(_too_many(["body", "input"], "tokens in the request", total, MAX_REQUEST_TOKENS,
                                    estimated))
        if errors:
            raise RequestValidationError(errors)
        fault = request.scope.get(FAULT_SCOPE_KEY, _NO_FAULT)
        stream = contextualized_body(backend, body.model, docs, body.output_dimensions(), body.encoding_format,
                                     usage(body.model, total), fault, slow_seconds)
        return StreamingResponse(stream, media_type="application/json", headers=headers(fault))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = []
        for e in exc.errors():
            msg = e["msg"]
            if e["type"] == "json_invalid" and e.get("ctx", {}).get("error"):
                msg = f"{msg}: {e['ctx']['error']}"
            detail.append({"loc": list(e["loc"]), "msg": msg, "type": e["type"]})
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI answers 400 when the body is not even text (invalid UTF-8) or nests
            # too deep for the JSON parser; the spec has every invalid body as a 422
            return JSONResponse({"detail": [{"loc": ["body"], "msg": f"JSON decode error: {exc.__cause__}",
                                             "type": "json_invalid"}]}, status_code=422)
        kind = _ERROR_TYPES.get(exc.status_code, "invalid_request_error")
        return Response(error_body(exc.status_code, kind, str(exc.detail)), status_code=exc.status_code,
                        headers=exc.headers, media_type="application/json")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        # Starlette's own 500 is text/plain; the error is logged (and re-raised) by it all the same
        return Response(error_body(500, "internal_server_error", "Internal Server Error"), status_code=500,
                        media_type="application/json")

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            # FastAPI's own ValidationError schema lists input and ctx, which these 422s leave out
            schema["components"]["schemas"]["ValidationError"] = ValidationError.model_json_schema()
            if config.auth:
                schema["components"]["securitySchemes"] = {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema

    # added innermost first: a request meets auth (which reads no body), then the rate limit, the size
    # limit, then faults
    app.add_middleware(InjectFaults, plan=FaultPlan(config.faults))
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(RateLimit, per_minute=config.rpm, burst=config.rpm_burst, log_path=config.request_log)
    if config.auth:
        app.add_middleware(BearerAuth, keys=keys)

    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, DropFilter) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(DropFilter())
    log.info("backend %s, token counts: %s, auth: %s, faults: %s", backend.name, counter.method,
             f"{len(keys)} key(s)" if config.auth else "off", dict(config.faults.rates) or "off")
    return app


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes: the config arrives in ``PPLX_CODEC_SERVER_CONFIG``."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise RuntimeError(f"{CONFIG_ENV} is not set; start the server with 'pplx-codec serve'")
    return create_app(ServerConfig.from_json(text))
