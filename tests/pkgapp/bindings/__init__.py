"""A bindings package: every submodule's bindings are discovered."""
