"""Self-describing streams: the ``describe`` event, OPTIONS, and ``manage.py syncbind_schema``.

:func:`~syncbind.schema.describe.describe` says what one binding offers;
:mod:`syncbind.schema.documents` turns every registered binding into an
AsyncAPI 3.0 document, an OpenAPI 3.1 document of the HTTP API, or TypeScript.
"""

from syncbind.schema.describe import describe

__all__ = ["describe"]
