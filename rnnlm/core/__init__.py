"""The foundation every layer stands on: errors and exit codes, the frozen configs, atomic writes and the rule
for files a user names, device and precision, the checkpoint format.  Imports nothing else of rnnlm.
"""
