"""Live subscriptions: rows and pages pushed again after every committed change.

- :mod:`.keys` — what a subscription is keyed by, and its scope;
- :mod:`.hub` — one per process: local subscriptions, one evaluation per key, fan-out;
- :mod:`.changes` — changes recorded per transaction and sent after commit;
- :mod:`.signals` — the thin model-signal receivers feeding :mod:`.changes`;
- :mod:`.notify` — ``syncbind.notify()`` for bulk operations, which send no signals.
"""
