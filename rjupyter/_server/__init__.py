"""The remote Jupyter server: launch scripts, startup parsing, the running server, the
inventory behind ``list_servers``/``stop_server``.
"""
