"""Serving a trained model to other programs: ``rnnlm serve`` (an OpenAI-compatible HTTP API) and the ``llm`` plugin.

A layer above ``generation`` and below ``cli`` (docs/developer/architecture.md).  This file imports nothing, so
the CLI reads :mod:`rnnlm.serving.settings` at ``--help`` time without torch, starlette or uvicorn, and ``llm``
loads :mod:`rnnlm.serving.llm_plugin` without the server's packages.

- :mod:`settings`: the server's limits and their defaults (torch-free);
- :mod:`catalog`: which checkpoints a folder holds and what each is called (torch-free);
- :mod:`engine`: one request's draw, in slices, under the one model lock;
- :mod:`openai_api`: OpenAI's request fields checked and mapped onto rnnlm's sampler, and its response shapes;
- :mod:`app`: the Starlette app and uvicorn around it;
- :mod:`llm_plugin`: simonw's ``llm`` lists and runs checkpoints in its own process, no server needed.
"""
