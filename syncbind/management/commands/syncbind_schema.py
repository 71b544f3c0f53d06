"""``manage.py syncbind_schema``: every stream as AsyncAPI 3.0, OpenAPI 3.1 or TypeScript."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from syncbind.schema import documents

FORMATS = ("asyncapi", "openapi", "typescript")


class Command(BaseCommand):
    help = (
        "Write the description of every syncbind stream: an AsyncAPI 3.0 document of the "
        "WebSocket protocol (default), an OpenAPI 3.1 document of the HTTP API, or "
        "TypeScript types of every event's data and reply."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=FORMATS, default="asyncapi")
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout.")
        parser.add_argument(
            "--user",
            help="Describe the fields this user (a username) would be shown, where a "
            "binding chooses them per user; anonymous by default.",
        )
        parser.add_argument("--title", default="syncbind", help="The document's title.")
        parser.add_argument(
            "--prefix", help="Where syncbind.urls is served (OpenAPI); found by reverse()."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        described = documents.descriptions(user=self._user(options["user"]))
        kind = options["format"]
        if kind == "typescript":
            text = documents.typescript(described)
        elif kind == "openapi":
            doc = documents.openapi(described, options["title"], options["prefix"])
            text = json.dumps(doc, indent=2) + "\n"
        else:
            text = json.dumps(documents.asyncapi(described, options["title"]), indent=2) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                out.write(text)
        else:
            self.stdout.write(text, ending="")

    def _user(self, username: str | None) -> Any:
        if username is None:
            return None
        model = get_user_model()
        try:
            return model._default_manager.get_by_natural_key(username)
        except model.DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
