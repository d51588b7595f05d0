"""Transforms: pure functions of a message (patient key, mappings into the record store)."""
