"""The exported page's parts, shipped as package data: ``page.html`` (markup and style), ``engine.js``
(forward pass and sampler), ``ui.js`` (controls) and :mod:`.kernel` (the WebAssembly product it runs).

Kept as real ``.html``/``.js`` files rather than Python strings so they read and lint as what they are;
:mod:`rnnlm.generation.export` fills the template.
"""
