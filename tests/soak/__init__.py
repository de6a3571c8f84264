"""The chaos soak: the whole deployment on network namespaces of this machine, attacked.

`python -m tests.soak --minutes M --seed S` (or `make soak`) builds the hosts (`hosts`), the
data and edge services (`services`), the Procfile roles (`roles`), puts a steady load on it
(`load`), runs a seeded schedule of faults (`schedule`, `chaos`), and checks the invariants
(`invariants`) while it runs and after it settles; `figures` prints what it measured.
"""
