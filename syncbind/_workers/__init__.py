"""Private: the worker threads binding code runs in: the pool, the executor, statement deadlines."""
