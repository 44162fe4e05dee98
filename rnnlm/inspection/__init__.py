"""Inside a model on the user's text: units that track features, surprise against an n-gram, gate saturation,
gradient reach, and the page that shows them.  Never imports ``training`` or ``generation``.
"""
