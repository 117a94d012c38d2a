"""The embedded run store (SQLite under ``.opsctl/``): schema, migrations, queries.

Imports nothing above it; services in ``opsctl.core`` are its only callers.
"""
