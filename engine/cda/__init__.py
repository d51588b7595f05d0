"""CDA R2 documents: safe parsing, header metadata, CI-SIS checks, lifecycle in the store."""
