"""The Node tools tests/node/package.json installs (``make node-tools``): tsc and the AsyncAPI schemas."""

import os
import shutil
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).with_name("node")
MODULES = NODE_DIR / "node_modules"


def missing(reason: str) -> None:
    """Skip, or fail under SYNCBIND_REQUIRE_SERVICES=1 (CI must run these tests)."""
    if os.environ.get("SYNCBIND_REQUIRE_SERVICES"):
        pytest.fail(reason + " (SYNCBIND_REQUIRE_SERVICES is set)")
    pytest.skip(reason)


def node_file(relative: str) -> Path:
    """A file of an installed package of tests/node/package.json."""
    path = MODULES / relative
    if not path.exists():
        missing(f"{path} is not installed: `make node-tools` installs it with npm")
    return path


def node() -> str:
    found = shutil.which("node")
    if found is None:
        missing("node is not on PATH")
    return str(found)


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        missing("npm is not on PATH")
    return str(found)


def tsc() -> list[str]:
    """The command line of the TypeScript compiler tests/node installs."""
    return [node(), str(node_file("typescript/bin/tsc"))]
