"""The one place that touches paramiko's and sshtunnel's private internals.

Everything here is version-gated and guarded: when an internal is missing or renamed, callers
get paramiko's public path (slower, never broken).
"""
