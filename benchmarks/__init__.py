"""rjupyter's tunnel against OpenSSH ``ssh -L`` and stock sshtunnel, on the real-sshd lab.

``python -m benchmarks`` builds the lab remote (a network namespace with its own sshd), runs every
row of issue 6's table for the three tools and prints medians as ratios to OpenSSH;
``--plot FILE.png`` draws them. ``--check`` runs the tiny correctness pass CI uses (bytes intact
through every tool, no timings). ``--slurm`` runs only the Slurm row (issue 16): submit to
ready through rjupyter against a bare ``sbatch`` Jupyter reached the same way.
``python -m benchmarks._page_trace`` traces JupyterLab's first load per link and tool. See
``docs/performance.md``.
"""
