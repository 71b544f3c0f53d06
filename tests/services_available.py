"""Exit 0 when PostgreSQL and Redis answer on loopback (used by the Makefile and tests)."""

import os
import socket
import sys


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def services_available() -> bool:
    return reachable("127.0.0.1", int(os.environ.get("SYNCBIND_PG_PORT", 5432))) and reachable(
        "127.0.0.1", 6379
    )


if __name__ == "__main__":
    sys.exit(0 if services_available() else 1)
