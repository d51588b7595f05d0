"""The journal: every message's raw bytes, metadata, state and history."""
