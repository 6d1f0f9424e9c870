"""Alembic migrations of the job store (run by ``clipline db upgrade``; see ``pipeline.schema``)."""
