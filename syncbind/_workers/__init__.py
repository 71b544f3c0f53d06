"""Private: the worker threads binding code runs in: the pool (:mod:`.pool`), the executor
that submits to it (:mod:`.executor`), and the statement deadlines its threads set on
their database connections (:mod:`.deadlines`)."""
