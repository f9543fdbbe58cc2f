"""Launchers: how a Jupyter server comes to run (on the host, or in a batch job)."""
