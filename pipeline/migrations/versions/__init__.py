"""Revisions, one module each (Alembic reads them; this package only ships them)."""
