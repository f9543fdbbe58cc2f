"""Talking to a running Jupyter through the tunnel: REST, kernels over the WebSocket,
notebooks, and SFTP files.
"""
