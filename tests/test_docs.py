"""Every snippet of README.md and docs/*.md marked runnable runs as written.

A fenced block whose info string has ``runnable`` (```` ```python runnable ````)
is run in a throwaway project (tests/docproject: a new Django project with
channels, syncbind and an app ``shop``), one fresh copy per document:

- ``runnable file=<path>`` blocks (any language) are written to that path
  first: ``shop/bindings.py``, ``conftest.py``, ``pyproject.toml``...;
- the other Python blocks then run in order, in one namespace, after
  ``migrate`` and ``manage.py check``;
- if the document wrote test files (``test_*.py``), pytest runs them there;
- files marked ``runner=django`` (``TestCase`` suites) run with ``manage.py test``.

A document with the comment ``<!-- snippets build on README.md (...) -->`` gets
the README's files first (docs/testing.md tests the README's quick start).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ROOT

PROJECT = Path(__file__).with_name("docproject")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def runnable_blocks(doc: Path) -> list[dict]:
    text = doc.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        language, options = match.group(1), match.group(2).split()
        if "runnable" not in options:
            continue
        files = [option.split("=", 1)[1] for option in options if option.startswith("file=")]
        runners = [option.split("=", 1)[1] for option in options if option.startswith("runner=")]
        blocks.append(
            {
                "doc": doc.relative_to(ROOT).as_posix(),
                "line": text.count("\n", 0, match.start()) + 1,
                "language": language,
                "file": files[0] if files else None,
                "runner": runners[0] if runners else "pytest",
                "code": match.group(3),
            }
        )
    return blocks


DOCUMENTED = [doc for doc in DOCS if runnable_blocks(doc)]


def test_the_main_documents_have_runnable_snippets():
    names = {doc.relative_to(ROOT).as_posix() for doc in DOCUMENTED}
    assert {"README.md", "docs/testing.md", "docs/migrating.md", "docs/bindings.md"} <= names


def run(command, cwd, env):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return result.returncode, result.stdout + result.stderr


def make_project(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3"))
    # ROOT after the project: the syncbind under test is this checkout's, not an
    # editable install's (a git worktree's tests would otherwise run another copy).
    path = os.pathsep.join([str(project), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": path, "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    env.pop("SYNCBIND_TEST_DB", None)
    return project, env


def write_files(project, blocks):
    for block in blocks:
        if block["file"]:
            target = project / block["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block["code"])


@pytest.mark.parametrize("doc", DOCUMENTED, ids=lambda doc: doc.relative_to(ROOT).as_posix())
def test_runnable_snippets_run(doc, tmp_path):
    project, env = make_project(tmp_path)
    blocks = runnable_blocks(doc)
    base = re.search(r"<!-- snippets build on (\S+)", doc.read_text())
    if base:
        written = [b for b in runnable_blocks(ROOT / base[1]) if b["file"]]
        blocks = written + blocks
    write_files(project, blocks)
    tests = pytest_files(blocks)
    snippets = [b for b in blocks if not b["file"] and b["language"] == "python"]
    (project / "snippets.json").write_text(json.dumps(snippets))

    code, output = run([sys.executable, "run_snippets.py", "snippets.json"], project, env)
    assert code == 0, output
    if tests:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
        code, output = run(command, project, env)
        assert code == 0, output
    for command in django_test_commands(blocks):
        code, output = run([sys.executable, *command], project, env)
        assert code == 0, output
    if django_test_commands(blocks):
        assert re.search(r"^Ran [1-9]\d* tests? in .*\n\nOK$", output, re.MULTILINE), output


def pytest_files(blocks):
    return [
        b["file"]
        for b in blocks
        if b["file"] and b["runner"] == "pytest" and re.search(r"(^|/)test_[^/]*\.py$", b["file"])
    ]


def django_test_commands(blocks):
    """``manage.py test`` for the documents' Django test modules, after the migrations
    of the app they test (a new project's ``makemigrations`` step)."""
    labels = [
        b["file"].removesuffix(".py").replace("/", ".")
        for b in blocks
        if b["file"] and b["runner"] == "django"
    ]
    if not labels:
        return []
    return [["manage.py", "makemigrations", "shop", "-v", "0"], ["manage.py", "test", *labels]]


def test_the_readme_asgi_py_serves_static_files_and_logged_in_websockets(tmp_path):
    """Under uvicorn or gunicorn nothing else serves syncbind.js, and /ws/ must pass the
    origin check and find the session's user (issue 14, point 4)."""
    project, env = make_project(tmp_path)
    readme = runnable_blocks(ROOT / "README.md")
    assert "mysite/asgi.py" in [b["file"] for b in readme]
    write_files(project, readme)
    code, output = run([sys.executable, "check_asgi.py"], project, env)
    assert (code, output.strip().splitlines()[-1:]) == (0, ["asgi ok"]), output


def test_the_quick_start_under_django_s_test_runner_prints_no_warning(tmp_path):
    """``manage.py test`` turns DEBUG off and runs the system checks: the quick start's
    in-memory layer is what a test run wants, so nothing is printed (syncbind.W013 is a
    deploy check); ``check --deploy`` with DEBUG off still names it."""
    project, env = make_project(tmp_path)
    write_files(project, runnable_blocks(ROOT / "README.md"))
    (project / "shop" / "tests.py").write_text(
        "from django.test import TestCase\n\n\n"
        "class PageTests(TestCase):\n"
        "    def test_the_notes_page_asks_for_a_login(self):\n"
        "        self.assertRedirects(\n"
        "            self.client.get('/'), '/accounts/login/?next=/', fetch_redirect_response=False\n"
        "        )\n"
    )
    code, output = run([sys.executable, "manage.py", "test", "shop"], project, env)
    assert code == 0, output
    assert "System check identified no issues (0 silenced)." in output
    assert "WARNINGS" not in output and "W013" not in output, output
    debug_off = project / "mysite" / "readme_settings.py"
    debug_off.write_text(debug_off.read_text() + "\nDEBUG = False\n")
    code, output = run([sys.executable, "manage.py", "check", "--deploy"], project, env)
    assert "syncbind.W013" in output, output


def test_docs_testing_md_runs_without_daphne(tmp_path):
    """The plugin and the clients need nothing that syncbind does not install: daphne
    (which ``channels.testing`` imports) made unimportable, the page's tests pass, with
    pytest and with ``manage.py test``."""
    project, env = make_project(tmp_path)
    doc = ROOT / "docs" / "testing.md"
    blocks = [b for b in runnable_blocks(ROOT / "README.md") + runnable_blocks(doc) if b["file"]]
    write_files(project, blocks)
    tests = pytest_files(blocks)
    assert tests
    script = (
        "import sys; sys.modules['daphne'] = None; import pytest; "
        f"sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *{tests!r}]))"
    )
    code, output = run([sys.executable, "-c", script], project, env)
    assert code == 0, output
    assert "daphne" not in output
    # And its manage.py test module (SyncClient).
    migrate, test = django_test_commands(blocks)
    run([sys.executable, *migrate], project, env)
    script = (
        "import sys; sys.modules['daphne'] = None; "
        "from django.core.management import execute_from_command_line; "
        f"execute_from_command_line({test!r})"
    )
    code, output = run([sys.executable, "-c", script], project, env)
    assert code == 0, output
    assert "daphne" not in output


OLD_BINDINGS = """from channels_binding.bindings import AsyncBinding

from .models import Product


class ProductBinding(AsyncBinding):
    model = Product
"""


def test_migrating_step_1_leaves_a_project_that_starts(tmp_path):
    """docs/migrating.md, step 1: syncbind installed beside channels-binding, whose
    settings and bindings are unchanged, passes ``check``; removing channels-binding
    first (what the guide said before) stops the project, since syncbind imports
    every app's bindings.py and the old ones import channels_binding."""
    project, env = make_project(tmp_path)
    (project / "shop" / "bindings.py").write_text(OLD_BINDINGS)
    settings = project / "mysite" / "settings.py"
    unchanged = settings.read_text()
    settings.write_text(
        unchanged + "\nINSTALLED_APPS = [*INSTALLED_APPS, 'channels_binding']\n"
        "CHANNELS_BINDING = {'AUTHENTIFICATION_CLASSES': "
        "('channels_binding.authentification.DefaultDjangoUser',), 'DEFAULT_PAGE_SIZE': 25}\n"
    )
    code, output = run([sys.executable, "manage.py", "check"], project, env)
    assert code == 0, output
    assert "syncbind.W015" in output  # the old settings dict, read until step 4

    hidden = {**env, "PYTHONPATH": env["PYTHONPATH"] + os.pathsep + str(tmp_path / "hide")}
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(
        "import sys\nsys.modules['channels_binding'] = None  # as if uninstalled\n"
    )
    settings.write_text(unchanged)  # channels-binding removed before its bindings
    code, output = run([sys.executable, "manage.py", "check"], project, hidden)
    assert code != 0 and "from channels_binding.bindings import AsyncBinding" in output, output


GUNICORN_LINE = re.compile(r"gunicorn mysite\.asgi:application\s+-k\s+(\S+)\s+-w\s+\d+")


def test_the_documented_gunicorn_worker_is_installed_by_the_server_extra():
    """The gunicorn lines name a worker class that imports without a deprecation warning,
    from packages that ``syncbind[server]`` installs."""
    import tomllib
    import warnings

    from django.utils.module_loading import import_string
    from gunicorn.workers.base import Worker

    documented = {
        match[1]
        for doc in (ROOT / "README.md", ROOT / "docs" / "deployment.md")
        for match in GUNICORN_LINE.finditer(doc.read_text())
    }
    assert documented == {"uvicorn_worker.UvicornWorker"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert issubclass(import_string("uvicorn_worker.UvicornWorker"), Worker)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    server = {
        re.split(r"[\[<>=]", requirement)[0]
        for requirement in extras["optional-dependencies"]["server"]
    }
    assert server == {"uvicorn", "uvicorn-worker", "gunicorn"}
