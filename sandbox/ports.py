"""Free loopback ports for the embedded servers, so parallel runs never collide.

A port `bind(0)` hands out comes from the kernel's ephemeral range, which it also gives to
the local end of every outgoing connection: between the pick and the server's own bind, one
of the test's clients could take it, and the server exited with "address in use". The ports
here come from below that range, where only listeners live, picked at random (from the
system's source: the test runner seeds `random` alike in every worker)."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

#: the lowest port picked: above the well-known and most registered services' ports
LOWEST = 10000
#: the range Linux gives outgoing connections by default, where it cannot be read
DEFAULT_EPHEMERAL = (32768, 60999)
#: picks tried before falling back to a port of the kernel's choosing
TRIES = 50


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on or connects from now, outside the ephemeral range."""
    ceiling = ephemeral_range()[0]
    if ceiling - LOWEST >= 1000:
        for _ in range(TRIES):
            port = LOWEST + secrets.randbelow(ceiling - LOWEST)
            if _bindable(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ephemeral_range(source: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) \
        -> tuple[int, int]:
    """The kernel's range for outgoing connections (Linux's default where it is unreadable)."""
    try:
        low, high = (int(part) for part in source.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
