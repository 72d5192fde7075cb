"""An embedded redis-server process on a free port: for the demo and for the tests, which
must be able to stop, kill and restart it to prove that nothing is lost or half-written."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sandbox.ports import free_port

#: starts tried on fresh ports when a picked port turns out taken
START_ATTEMPTS = 3


class RedisServerError(RuntimeError):
    """redis-server is missing or did not come up."""


class RedisServer:
    def __init__(
        self, *, port: int = 0, data_dir: str | Path | None = None, appendonly: bool = False,
        binary: str = "redis-server", config: str = "",
    ) -> None:
        found = shutil.which(binary)
        if found is None:
            raise RedisServerError(
                f"{binary} not found on PATH: install Redis (e.g. the redis-server package)"
            )
        self.binary = found
        self.port = port or free_port()
        #: the port is ours to change until the server first answers on it (nobody knows it)
        self._port_chosen = not port
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="rollout-redis-"))
        self.appendonly = appendonly
        self.config = config  # redis.conf lines (ACL users, say), read before the flags
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, timeout: float = 10.0) -> None:
        """Start and wait until it answers. A server that exits at its first start on a
        port we picked is started once more on another (the port may have been taken
        since the pick, by a process this one cannot see); its log tells any other cause."""
        if self.running:
            return
        for attempt in range(START_ATTEMPTS):
            if self._started(timeout):
                self._port_chosen = False
                return
            if not self._port_chosen or attempt == START_ATTEMPTS - 1:
                break
            self.port = free_port()
        raise RedisServerError(f"redis-server exited at start: {self._log_tail()}")

    def _started(self, timeout: float) -> bool:
        """Whether the server came up; False if it exited (a timeout raises)."""
        conf = self.data_dir / "redis.conf"
        conf.write_text(self.config + "\n")
        args = [
            self.binary, str(conf), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes" if self.appendonly else "no",
            "--dir", str(self.data_dir), "--daemonize", "no", "--loglevel", "warning",
            "--protected-mode", "yes", "--logfile", str(self._log),
        ]
        # a process group of its own: a terminal's Ctrl-C reaches the whole foreground group,
        # and Redis exited at once, before the demo's graceful stop could save and give the
        # leader lease back; its owner stops it (`stop`, `kill`)
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      process_group=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._wait()
                return False
            if _answers_ping(self.port):
                return True
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"redis-server did not answer on port {self.port}: "
                               f"{self._log_tail()}")

    @property
    def _log(self) -> Path:
        return self.data_dir / "redis.log"

    def _log_tail(self, lines: int = 5) -> str:
        """The server's last lines, where it says why it stopped."""
        try:
            return " | ".join(self._log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(it wrote no log)"

    def stop(self) -> None:
        """A clean shutdown (SIGTERM; a frozen server is thawed to take it)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
            self._proc.terminate()
            self._wait()

    def kill(self) -> None:
        """A crash (SIGKILL): nothing is flushed."""
        if self._proc is not None:
            self._proc.kill()
            self._wait()

    def freeze(self) -> None:
        """A stall (SIGSTOP), as of a Redis on a stalled host: every request waits unanswered
        until `thaw` (a client that gives up meanwhile drops its request with its
        connection)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _wait(self) -> None:
        assert self._proc is not None
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up, ACL or not
    except OSError:
        return False
