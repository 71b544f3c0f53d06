"""Live subscriptions: rows and pages pushed again after every committed change.

Each module here opens with what it does; docs/architecture.md ("A change")
follows one change from ``save()`` to the frames its subscribers receive.
"""
