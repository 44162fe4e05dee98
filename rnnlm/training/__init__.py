"""Teacher forcing and truncated BPTT: the trainer, its schedule and budgets, checkpoint state, the run log, the
size chosen for a budget (``--size auto``) and ``rnnlm.train``.  Never imports ``generation`` or ``inspection``.
"""
