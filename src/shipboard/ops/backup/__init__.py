"""Backups: one archive per run, checked against its own manifest.

The archive is a plain POSIX tar holding two members, in this order:

- ``manifest.json``: format, Shipboard version, backend, schema revision, creation time, the
  dump's size and SHA-256, and per table its row count and content checksum (on PostgreSQL, the
  row count of every partition too);
- the dump: ``database.sqlite.gz`` (a gzip-compressed SQLite file made with the online backup
  API) or ``database.pgdump`` (``pg_dump --format=custom``).

The content checksum of a table is the sum modulo 2**256 of the SHA-256 of every row's canonical
rendering (:func:`canonical_row`). A sum does not depend on row order, so the same rows give the
same checksum on SQLite and PostgreSQL whatever their collations, and ``db copy`` verifies its
copy with it too.
"""
