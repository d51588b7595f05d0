"""The trust boundary: TLS contexts, peer allow-lists and sender tokens.

A lower layer: it imports nothing of the runtime, so that sources, destinations, the CLI and
the channel models may all use it.
"""
