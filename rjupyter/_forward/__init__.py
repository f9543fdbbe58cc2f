"""Forwarding local ports over an SSH connection: the public :class:`Tunnel`, the
forwarder (an ``sshtunnel.SSHTunnelForwarder`` subclass), its pump and window sizing.
"""
