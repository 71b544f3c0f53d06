"""Private: live subscriptions: rows and pages pushed again after every committed change.

docs/architecture.md ("A change") follows one change from ``save()`` to the frames
its subscribers receive. The modules, in that order:

- a change is recorded: :mod:`.signals` (model signals), :mod:`.notify`
  (``syncbind.notify()``), :mod:`.changes` (recorded per transaction, announced on
  commit), :mod:`.credentials` (users, sessions, tokens and permissions that changed),
  :mod:`.announcer` (the thread that sends them), :mod:`.messages` (every message
  between processes);
- a hub receives it: :mod:`.hub` (one per process), :mod:`.groups` (its channel-layer
  side), :mod:`.lanes` (work of one stream or user apart from the others),
  :mod:`.server_push` (merging bursts, addressing server pushes);
- the keys it affects are evaluated: :mod:`.fanout`, :mod:`.affected` and
  :mod:`.matching` (which keys, decided without a query where it can be),
  :mod:`.keys` (subscription keys and their state);
- their subscribers are sent the result: :mod:`.delivery` (each subscriber's checks
  and frame), :mod:`.subscriptions` (one connection's), :mod:`.transactions` (one
  transaction's frames together), :mod:`.versions` (the version each carries).
"""
