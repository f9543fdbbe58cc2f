"""The SSH layer: resolve a host like ``ssh -G``, known hosts, auth, liveness, and
:class:`SSHConnection`, the logged-in connection everything above holds.
"""
