"""Scoring text: nats, perplexity and bits per character of a model, and the n-gram baselines they are compared
with.  Imports ``model`` and below.
"""
