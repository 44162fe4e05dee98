"""Filling the one-file HTML pages (export's and inspect's): values are data, never template or markup.

Both pages are built from these two helpers so each escape has one home and
one browser test that fails without it (docs/developer/rules.md, "Files a user
names"); the mark that tells a page rnnlm wrote is ``rnnlm.core.fileio.PAGE_MARK``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SLOT = re.compile(r"\{\{([A-Z]+)\}\}")


def fill_template(template: str, values: dict[str, str]) -> str:
    """``template`` with every ``{{NAME}}`` slot replaced by ``values[NAME]``, all in one pass.

    One pass because values are data, never template: filling slot after slot
    would expand a marker inside an earlier value (a run directory named
    ``{{UI}}`` once received the page's code, one named ``{{WEIGHTS}}`` a
    second copy of the weights).  A slot without a value, or a value without a
    slot, means the template and its caller disagree, so both are errors.
    """
    slots = set(_SLOT.findall(template))
    if slots != values.keys():
        raise ValueError(f"template slots {sorted(slots)} do not match the values given {sorted(values)}")
    return _SLOT.sub(lambda match: values[match.group(1)], template)


def script_json(value: Any) -> str:
    """``value`` as JSON to put inside a ``<script>`` element, whatever its strings hold.

    Inside a script element the HTML parser acts on nothing but ``<`` (``</script``
    ends the element, ``<!--`` and ``<script`` change how the end is found), so
    ``<`` written as ``\\u003c``, which ``JSON.parse`` reads back as ``<``, is the one
    escape needed there; ``&`` and ``>`` are not decoded in a script element.
    Both pages (export's and inspect's) carry their data this way.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


__all__ = ["fill_template", "script_json"]
