"""Private: who is on the other end of a connection (:mod:`.connection`, with the
Protocols of what it holds in :mod:`.collaborators`), and whether they may be served
a request, a change push or a server push (:mod:`.decide`)."""
