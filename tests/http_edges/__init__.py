"""HTTP edge cases an outside audit found: hostile headers, bodies and ids (API, page, S3)."""
