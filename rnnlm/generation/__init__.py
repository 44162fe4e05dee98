"""Text out of a model: sampling, beam search, the chat session, the copy check, the exported web page, and
``rnnlm.load``'s LanguageModel.  Never imports ``training`` or ``inspection``.
"""
