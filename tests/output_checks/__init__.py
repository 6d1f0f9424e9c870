"""Output checked frame by frame on inputs an outside audit chose (each test failed before its fix)."""
