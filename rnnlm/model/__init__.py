"""The network (embedding → stacked RNN/LSTM/GRU → linear), the numpy reference of its equations, the unrolled
per-gate step, parameter counts, int8 weights, and loading a checkpoint into a module.  Imports ``core`` and ``data``.
"""
