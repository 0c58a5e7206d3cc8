"""Where cells run: this machine (`local`), a SLURM cluster or a Ray cluster, and their settings.

The contract every executor implements is harness.executor; `builtin` registers these three through the
`bench_executors` hook like any plugin's; `config` turns flags and a TOML file into an executor.
"""
