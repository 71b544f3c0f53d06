"""[syncbind/schema, static/syncbind] The TypeScript syncbind_schema writes and syncbind.d.ts
compile with tsc and catch a wrong event; npm installs syncbind.js from the repository
and Node imports it as an ES module (issue 25, item 2). Each runs Node: the e2e tail."""

import json
import re
import subprocess
import textwrap

import pytest
from django.core.management import call_command

from syncbind.testing import override_bindings
from tests.node_tools import node, npm, tsc
from tests.servers import ROOT
from tests.test_schema import StaffFieldsBinding

pytestmark = pytest.mark.e2e

CLIENT = ROOT / "syncbind" / "static" / "syncbind"
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "target": "es2020",
        "module": "es2020",
        "moduleResolution": "bundler",
    }
}
USES = """
import { SyncBind, SyncBindError } from "syncbind";
import type { Events, TestappProductRow, TestappProductPage } from "./events";

const sb = new SyncBind<Events>("ws://127.0.0.1:8000/ws/", { token: async () => "t" });

export async function typed(): Promise<void> {
  const page = await sb.send("testapp.Product.list", { ordering: ["-price"], filters: { price__lt: 10 } });
  const names: string[] = page.rows.map((row: TestappProductRow) => row.name);
  const cheap: TestappProductPage = await sb.send("testapp.Product.list#cheap");
  const row = await sb.send("testapp.Product.retrieve", { id: 1 });
  const price: string = row.price;
  const written = await sb.send("testapp.Product.create", { name: "Chair", price: 10, category: 1 });
  const id: number = written.id;
  const bumped = await sb.send("schema.StaffFields.bump", { by: 2 });
  const view = sb.live("testapp.Product.retrieve#detail", { id }, (shown, info) => {
    if (info.error instanceof SyncBindError) console.log(info.error.code, info.ended);
    if (shown) console.log(shown.name, info.resume, info.deleted);
  });
  sb.on("status", (status) => console.log(status === "open"));
  await view.close();
  console.log(names, cheap.count, price, bumped.price);
}

export function untyped(): void {
  const any = new SyncBind();
  any.send("anything.At.all", { x: 1 }).then((reply) => console.log(reply.whatever));
}
"""
# Each line is one mistake tsc must report (1-based lines of the file).
MISTAKES = """
import { SyncBind } from "syncbind";
import type { Events } from "./events";
const sb = new SyncBind<Events>();
sb.send("testapp.Product.lsit", {});
sb.send("testapp.Product.retrieve", { id: "one" });
sb.send("testapp.Product.retrieve").then((row) => row.colour);
sb.send("testapp.Product.create", { name: "Chair" });
sb.send("testapp.Product.list", { order: "name" });
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A front end's project: syncbind installed by npm from the repository path, and
    the types syncbind_schema writes for the test project's streams."""
    where = tmp_path_factory.mktemp("frontend")
    (where / "package.json").write_text(json.dumps({"name": "frontend", "private": True}))
    installed = subprocess.run(
        [npm(), "install", "--no-audit", "--no-fund", "--offline", str(CLIENT)],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    with override_bindings(StaffFieldsBinding):
        call_command("syncbind_schema", "--format", "typescript", "--output", where / "events.ts")
    (where / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    return where


def compile_ts(project, name, text):
    (project / name).write_text(textwrap.dedent(text).lstrip())
    result = subprocess.run(
        [*tsc(), "-p", "tsconfig.json", "--pretty", "false"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (project / name).unlink()
    return result.returncode, result.stdout + result.stderr


def test_the_generated_types_and_syncbind_d_ts_compile_in_use(project):
    code, output = compile_ts(project, "uses.ts", USES)
    assert (code, output) == (0, "")


def test_tsc_refuses_a_wrong_event_and_wrong_data(project):
    code, output = compile_ts(project, "mistakes.ts", MISTAKES)
    assert code != 0
    lines = sorted({int(line) for line in re.findall(r"^mistakes\.ts\((\d+),", output, re.M)})
    assert lines == [4, 5, 6, 7, 8], output
    assert "'\"testapp.Product.lsit\"' is not assignable" in output


def test_npm_installs_the_client_and_node_imports_it_as_an_es_module(project):
    script = (
        "import { SyncBind, SyncBindError } from 'syncbind';"
        "const error = new SyncBindError({code: 'invalid', message: 'No.'}, 'a.B.create');"
        "console.log(typeof SyncBind, error.code, error.event);"
    )
    result = subprocess.run(
        [node(), "--input-type=module", "-e", script],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, "function invalid a.B.create\n"), result.stderr
