"""Run the runnable Python snippets of one doc, in order, in this project.

``python run_snippets.py snippets.json``: each entry is ``{"doc", "line", "code"}``.
The snippets share one namespace, as a reader pasting them into one module would.
"""

import json
import os
import sys
import traceback
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", run_syncdb=True, verbosity=0)
call_command("check", fail_level="ERROR")

namespace = {"__name__": "docs_snippet"}
failed = 0
for snippet in json.loads(Path(sys.argv[1]).read_text()):
    where = f"{snippet['doc']}:{snippet['line']}"
    try:
        exec(compile(snippet["code"], where, "exec"), namespace)
    except Exception:
        failed += 1
        print(f"--- the snippet at {where} failed:", file=sys.stderr)
        traceback.print_exc()
sys.exit(1 if failed else 0)
