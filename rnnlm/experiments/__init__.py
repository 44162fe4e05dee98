"""Runs that combine the layers below: ``compare`` trains cells side by side and scores them.
"""
