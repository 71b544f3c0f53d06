"""The HTTP transport: the same bindings and core, as plain Django views."""
