"""Text in, ids out: reading and checking corpora, building the default corpus, splits, the validation scope and
truncated-BPTT batches; ``tokenizers`` turns characters or subwords into ids.  Imports only ``core``.
"""
