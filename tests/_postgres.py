"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder.

``postgres_server`` (session scope) finds the binaries (``PATH``, then the newest
``/usr/lib/postgresql/*/bin``), creates a cluster in a fresh temporary folder, starts it on a
free port of 127.0.0.1 with trust authentication, and stops and deletes it at the end.
``postgres_dsn`` (per test) creates a fresh, empty database on that server and yields its DSN.

PostgreSQL refuses to run as root, and CI runs as root: then the folder is handed to the
``postgres`` system user (``nobody`` if there is none) and the binaries run as that user;
the tests still connect over TCP as the database superuser ``postgres``.

Where no PostgreSQL binaries exist at all, the tests that use these fixtures skip with one
line saying so; where they exist but the server does not start, that is an error.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "find_pg_bin", "postgres_dsn", "postgres_server"]

SKIP_REASON = (
    "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: "
    "install the postgresql package to run the PostgreSQL tests"
)
_DB_NAMES = itertools.count()


def find_pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent

    def version(folder: str) -> tuple[int, ...]:
        name = Path(folder).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    folders = [f for f in glob.glob("/usr/lib/postgresql/*/bin") if Path(f, "pg_ctl").exists()]
    folders = [f for f in folders if Path(f, "initdb").exists()]
    return Path(max(folders, key=version)) if folders else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway server; ``dsn(dbname)`` addresses one of its databases.
    ``stop()`` and ``start()`` take it down and bring it back on the same port (a restart,
    an outage), for the tests of what a fleet does meanwhile."""

    port: int
    folder: Path
    cluster: _Cluster | None = field(default=None, compare=False, repr=False)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: open connections are cut, as in a restart)."""
        assert self.cluster is not None
        done = self.cluster.run("pg_ctl", "-D", str(self.cluster.data), "-m", mode, "-w", "stop")
        if done.returncode:
            raise RuntimeError(f"pg_ctl stop failed:\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start it again on the same port."""
        assert self.cluster is not None
        self.cluster.start(port=self.port)


class _Cluster:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:  # PostgreSQL will not run as root: run it as a system user
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self.user = pwd.getpwnam(name)
                    break
            if self.user is None:
                raise RuntimeError("running as root and no 'postgres' or 'nobody' user exists")
        # /tmp rather than $TMPDIR when root: the system user must reach the folder, and a
        # root-only TMPDIR (e.g. under /root) would not let it.
        base = "/tmp" if self.user is not None and os.path.isdir("/tmp") else None
        self.folder = Path(tempfile.mkdtemp(prefix="seedream-pg-", dir=base))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        if self.user is not None:
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.folder, 0o700)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        extra: dict[str, object] = {}
        if self.user is not None:
            extra = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if self.user is not None:
            env["HOME"] = str(self.folder)
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **extra,
        )

    def initdb(self) -> None:
        done = self.run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self, port: int | None = None) -> int:
        # Durability is not what these tests measure: fsync off keeps them quick.
        wanted = port
        for _attempt in range(3 if wanted is None else 20):  # a port can be taken meanwhile
            port = wanted or _free_port()
            options = (
                f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            done = self.run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
            )
            if done.returncode == 0:
                return port
            if wanted is not None:
                time.sleep(0.25)  # the old server's socket, still closing
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}{done.stderr}\n{log[-3000:]}")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, on a free port of 127.0.0.1."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(SKIP_REASON)
    cluster = _Cluster(bin_dir)
    try:
        cluster.initdb()
        port = cluster.start()
        yield PostgresServer(port=port, folder=cluster.folder, cluster=cluster)
    finally:
        cluster.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """The DSN of a fresh, empty database on the session's server, dropped afterwards."""
    import psycopg

    name = f"t{os.getpid()}_{next(_DB_NAMES)}_{int(time.time() * 1000) % 100000}"
    admin = postgres_server.dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        # FILE_COPY (15+): the template's files copied as they are, faster than WAL_LOG here.
        strategy = " STRATEGY = FILE_COPY" if conn.info.server_version >= 150000 else ""
        conn.execute(f"CREATE DATABASE {name}{strategy}")
    try:
        yield postgres_server.dsn(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
