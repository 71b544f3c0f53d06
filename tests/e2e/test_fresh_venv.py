"""docs/testing.md in a new virtual environment: installed as the page says, both suites pass (issue 25, point 1).

A new user's environment has syncbind and what its documented extra
installs, nothing of this repository's development tools (no daphne, no
websockets). The venv installs syncbind from a copy of this checkout with
pip (packages from the registry or pip's local cache), then runs the page's
pytest file and its ``manage.py test`` module in the README's project.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.servers import ROOT
from tests.test_docs import PROJECT, pytest_files, runnable_blocks, write_files

pytestmark = pytest.mark.e2e

# What a source install of syncbind needs of this checkout.
PACKAGE_FILES = ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "syncbind"]
# The documented command: pip install "syncbind[testing]".
INSTALL_LINE = re.compile(r'^pip install "syncbind\[testing\]"$', re.MULTILINE)


def run(command, cwd, env, timeout=600):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def copy_package(target):
    target.mkdir()
    for name in PACKAGE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)


def test_docs_testing_md_passes_in_a_new_venv_for_pytest_and_manage_py_test(tmp_path):
    assert INSTALL_LINE.search((ROOT / "docs" / "testing.md").read_text())
    source = tmp_path / "syncbind-src"
    copy_package(source)
    venv = tmp_path / "venv"
    # Nothing of this run's environment leaks in: no PYTHONPATH, no active venv.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE", "PYTHONHOME"}
    }
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", f"{source}[testing]"], tmp_path, env)
    installed = run([python, "-m", "pip", "list", "--format=freeze"], tmp_path, env).lower()
    assert "syncbind==" in installed and "pytest-django==" in installed
    assert "daphne==" not in installed and "websockets==" not in installed

    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"))
    blocks = [
        b
        for doc in (ROOT / "README.md", ROOT / "docs" / "testing.md")
        for b in runnable_blocks(doc)
        if b["file"]
    ]
    write_files(project, blocks)
    tests = pytest_files(blocks)
    django_modules = [
        b["file"].removesuffix(".py").replace("/", ".") for b in blocks if b["runner"] == "django"
    ]
    assert tests and django_modules

    output = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], project, env)
    assert re.search(r"^\d+ passed in ", output, re.MULTILINE), output
    run([python, "manage.py", "makemigrations", "shop", "-v", "0"], project, env)
    output = run([python, "manage.py", "test", *django_modules], project, env)
    assert re.search(r"^Ran [1-9]\d* tests? in .*\n\nOK$", output, re.MULTILINE), output
    # The syncbind under test is the venv's copy, not this checkout.
    where = run(
        [python, "-c", "import syncbind, sys; sys.stdout.write(syncbind.__file__)"], project, env
    )
    assert where.startswith(str(venv))
