"""Helpers shared by the test_server*.py modules."""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import h11
import jsonschema_rs
import numpy as np
import pytest
import yaml

import pplx_codec as pc

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
SPEC_PATH = Path(__file__).parent / "data" / "perplexity-embeddings-openapi.yaml"
SEED = yaml.safe_load(SPEC_PATH.read_text())
SCHEMAS = SEED["components"]["schemas"]


def _strict(schema: dict) -> dict:
    """The seed's schema with refs inlined, every listed property required and
    nothing else allowed: what our bodies must satisfy (the spec itself
    requires nothing of a response)."""
    schema = copy.deepcopy(schema)
    if "$ref" in schema:
        return _strict(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
    if schema.get("type") == "object" and "properties" in schema:
        schema["properties"] = {k: _strict(v) for k, v in schema["properties"].items()}
        schema["required"] = sorted(schema["properties"])
        schema["additionalProperties"] = False
    if "items" in schema:
        schema["items"] = _strict(schema["items"])
    return schema


EMBEDDINGS_RESPONSE = jsonschema_rs.validator_for(_strict(SCHEMAS["EmbeddingsResponse"]))
# the contextualized response as API-NOTES.md describes it, from the seed's parts
_CTX = _strict(SCHEMAS["EmbeddingsResponse"])
_CTX["properties"]["data"]["items"] = {
    "type": "object", "required": ["object", "index", "data"], "additionalProperties": False,
    "properties": {"object": {"const": "list"}, "index": {"type": "integer"},
                   "data": {"type": "array", "items": _strict(SCHEMAS["EmbeddingObject"])}}}
CONTEXTUALIZED_RESPONSE = jsonschema_rs.validator_for(_CTX)
HTTP_VALIDATION_ERROR = jsonschema_rs.validator_for(_strict(SCHEMAS["HTTPValidationError"]))


def check_embeddings(body: dict, n: int, model: str) -> None:
    EMBEDDINGS_RESPONSE.validate(body)
    assert body["object"] == "list" and body["model"] == model
    assert all(d["object"] == "embedding" for d in body["data"])
    assert sorted(d["index"] for d in body["data"]) == list(range(n))


def check_contextualized(body: dict, sizes: list[int], model: str) -> None:
    CONTEXTUALIZED_RESPONSE.validate(body)
    assert body["object"] == "list" and body["model"] == model
    assert sorted(d["index"] for d in body["data"]) == list(range(len(sizes)))
    for doc in body["data"]:
        assert sorted(c["index"] for c in doc["data"]) == list(range(sizes[doc["index"]]))


def rows(body: dict) -> list[str]:
    """The embedding strings placed by ``index`` (the API does not promise order)."""
    out = [None] * len(body["data"])
    for d in body["data"]:
        out[d["index"]] = d["embedding"]
    return out


def doc_rows(body: dict) -> list[list[str]]:
    out = [None] * len(body["data"])
    for doc in body["data"]:
        out[doc["index"]] = rows(doc)
    return out


def int8(body: dict, dim: int) -> np.ndarray:
    return pc.decode_int8(rows(body), dim)


def unit(m: np.ndarray) -> np.ndarray:
    f = m.astype(np.float64)
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def raw_exchange(url: str, path: str, body: bytes, headers: dict, read_limit: float = 60.0):
    """POST over a plain socket, parsed by h11: returns (response, [chunk sizes], body
    bytes, ended cleanly).  h11 keeps the chunked framing that clients hide."""
    parts = urlsplit(url)
    conn = h11.Connection(h11.CLIENT)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=read_limit)
    try:
        hdrs = [("host", parts.netloc), ("content-type", "application/json"),
                ("content-length", str(len(body))), *headers.items()]
        sock.sendall(conn.send(h11.Request(method="POST", target=path, headers=hdrs)))
        sock.sendall(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        response, chunks, data, clean, current = None, [], bytearray(), False, 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:  # the peer closed mid-body
                break
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(sock.recv(1 << 16))  # b"" marks the end of the stream
                except ConnectionResetError:
                    break
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                data += event.data
                current += len(event.data)
                if event.chunk_end:
                    chunks.append(current)
                    current = 0
            elif isinstance(event, h11.EndOfMessage):
                clean = True
                break
            elif isinstance(event, h11.ConnectionClosed):
                break
        return response, chunks, bytes(data), clean
    finally:
        sock.close()


def header(response: h11.Response, name: bytes) -> bytes | None:
    return next((v for k, v in response.headers if k == name), None)


def body_json(data: bytes) -> dict:
    return json.loads(data)


# --- pplx-codec serve in a child process ---

def spawn_serve(*extra: str, sigint: str = "signal.default_int_handler") -> subprocess.Popen:
    """``pplx-codec serve --port 0`` (key ``KEY``, no access log) in a child process,
    in a session of its own, so that ``stopped`` can kill it with its workers.

    ``sigint``: the SIGINT disposition the CLI starts with, set explicitly rather than
    inherited, since a shell starts a background job (``pytest &``) with SIGINT
    ignored; set in the child's Python, as no preexec_fn is safe with threads running."""
    env = dict(os.environ, PPLX_CODEC_SERVER_KEYS=KEY)
    start = f"import runpy, signal; signal.signal(signal.SIGINT, {sigint}); runpy.run_module('pplx_codec', " \
            "run_name='__main__')"
    return subprocess.Popen([sys.executable, "-c", start, "serve", "--port", "0", "--no-access-log", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def banner(proc: subprocess.Popen, timeout: float = 120.0) -> tuple[str, str] | None:
    """(base URL, line) of the child's banner; None if its first line is not one
    (it ended first).  Waits ``timeout`` s at most: then the child is killed."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    match = re.search(r"on (http://127\.0\.0\.1:\d+) ", line)
    return (match.group(1), line) if match else None


def start_serve(*extra: str, sigint: str = "signal.default_int_handler") -> tuple[subprocess.Popen, str, str]:
    """``spawn_serve``; returns (process, base URL, banner) once its banner is out
    (its stop handlers are in before it prints the banner)."""
    proc = spawn_serve(*extra, sigint=sigint)
    found = banner(proc)
    if found is None:
        done = stopped(proc, signal.SIGKILL)
        pytest.fail(f"no banner; exit code {done.returncode}, stderr:\n{done.stderr}")
    return proc, *found


def stopped(proc: subprocess.Popen, sig: int, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Send ``sig``; the child's exit code and the rest of its output once it has ended.

    The child and its workers do not outlive this call, whatever happens: a
    server left running would hold a port and a core through the rest of the
    run.  A child still running after ``timeout`` s is killed and fails the test."""
    try:
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_session(proc)
            pytest.fail(f"{signal.Signals(sig).name} did not stop pplx-codec serve within {timeout:g} s; "
                        f"stderr:\n{_rest(proc)}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        _kill_session(proc)


def _kill_session(proc: subprocess.Popen) -> None:
    # the session is the child's own (start_new_session): its id is the child's pid
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # nothing left in it
        pass
    proc.wait()


def _rest(proc: subprocess.Popen) -> str:
    try:
        return proc.communicate(timeout=10)[1]
    except (subprocess.TimeoutExpired, ValueError):  # a pipe still held open; already read
        return "(unreadable)"


def refuses_connections(base: str) -> bool:
    """Nothing listens at ``base`` any more (a connection is refused)."""
    parts = urlsplit(base)
    with socket.socket() as s:
        s.settimeout(10)
        return s.connect_ex((parts.hostname, parts.port)) == errno.ECONNREFUSED
