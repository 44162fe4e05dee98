"""Every bad input we know of, run through the real command line; prints a Markdown table.

    python scripts/bad_inputs.py            # ~1 minute: one tiny training run, then ~50 bad commands

Each case runs ``python -m rnnlm ...`` in a subprocess, in a scratch directory,
exactly as a user would, and records the exit code and the first line of
stderr.  The script fails (exit 1) if any case prints a traceback, exits 0, or
exits with a code other than the one docs/developer/rules.md assigns (2: unusable
input), so the table in a closing note is also a check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "16", "--embed", "8", "--bptt", "8", "--batch-size", "4", "--precision", "fp32", "--threads", "1"]
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 30

# (what, argv); {name} is replaced by a file made in the scratch directory.
CASES: list[tuple[str, list[str]]] = [
    ("missing corpus", ["train", "missing.txt"]),
    ("directory as corpus", ["train", "{dir}"]),
    ("empty corpus", ["train", "{empty}"]),
    ("binary corpus (NUL byte)", ["train", "{binary}"]),
    ("Latin-1 corpus (not UTF-8)", ["train", "{latin1}"]),
    ("UTF-8 cut off at the end", ["train", "{cutoff}"]),
    ("random bytes corpus", ["train", "{random}"]),
    ("corpus shorter than one batch", ["train", "{short}"]),
    ("second corpus file missing", ["train", "{corpus}", "missing.txt"]),
    ("unknown cell", ["train", "{corpus}", "--cell", "transformer"]),
    ("zero hidden size", ["train", "{corpus}", "--hidden", "0"]),
    ("negative layers", ["train", "{corpus}", "--layers", "-1"]),
    ("negative learning rate", ["train", "{corpus}", "--lr", "-1"]),
    ("NaN learning rate", ["train", "{corpus}", "--lr", "nan"]),
    ("dropout 1.5", ["train", "{corpus}", "--dropout", "1.5"]),
    ("unparseable duration", ["train", "{corpus}", "--max-time", "soon"]),
    ("zero steps", ["train", "{corpus}", "--max-steps", "0"]),
    ("split with a word in it", ["train", "{corpus}", "--split", "0.9,x"]),
    ("split summing over 1", ["train", "{corpus}", "--split", "0.95,0.1"]),
    ("--tie with embed ≠ hidden", ["train", "{corpus}", "--tie", "--embed", "8", "--hidden", "16"]),
    ("bpe without --vocab-size", ["train", "{corpus}", "--tokenizer", "bpe"]),
    ("bpe vocabulary too small", ["train", "{corpus}", "--tokenizer", "bpe", "--vocab-size", "10", *TINY]),
    ("--resume with no earlier run", ["train", "{corpus}", "--resume"]),
    ("--init-from a pickle", ["train", "{corpus}", "--init-from", "{pickle}"]),
    ("--val-file missing", ["train", "{corpus}", "--val-file", "missing.txt", *TINY]),
    ("--threads 0", ["train", "{corpus}", "--threads", "0"]),
    ("checkpoint missing", ["generate", "missing.safetensors"]),
    ("text file as checkpoint", ["generate", "{corpus}"]),
    ("malicious pickle as checkpoint", ["generate", "{pickle}"]),
    ("torch.save zip as checkpoint", ["generate", "{zip}"]),
    ("truncated checkpoint", ["generate", "{truncated}"]),
    ("checkpoint with a flipped byte", ["generate", "{flipped}"]),
    ("another program's safetensors", ["generate", "{foreign}"]),
    ("directory that is not a run", ["generate", "{dir}"]),
    ("prompt outside the vocabulary", ["generate", "{run}", "--prompt", "Zebra✓"]),
    ("negative temperature", ["generate", "{run}", "--temperature", "-1"]),
    ("NaN temperature", ["generate", "{run}", "--temperature", "nan"]),
    ("negative top-k", ["generate", "{run}", "--top-k", "-2"]),
    ("top-p 1.5", ["generate", "{run}", "--top-p", "1.5"]),
    ("top-p 0", ["generate", "{run}", "--top-p", "0"]),
    ("length 0", ["generate", "{run}", "--length", "0"]),
    ("num-samples 0", ["generate", "{run}", "--num-samples", "0"]),
    ("repetition penalty 0", ["generate", "{run}", "--repetition-penalty", "0"]),
    ("empty stop string", ["generate", "{run}", "--stop", ""]),
    ("prompt file missing", ["generate", "{run}", "--prompt-file", "missing.txt"]),
    ("no checkpoint and no runs", ["generate"]),
    ("eval file missing", ["eval", "{run}", "missing.txt"]),
    ("eval file not UTF-8", ["eval", "{run}", "{latin1}"]),
    ("eval file with unknown characters", ["eval", "{run}", "{korean}"]),
    ("eval window 0", ["eval", "{run}", "--window", "0"]),
    ("eval a pickle", ["eval", "{pickle}"]),
    ("compare unknown cell", ["compare", "{corpus}", "--cells", "rnn,transformer"]),
    ("compare layers 0", ["compare", "{corpus}", "--layers", "0"]),
    ("compare bad budget", ["compare", "{corpus}", "--budget", "soon"]),
    ("compare without a test split", ["compare", "{corpus}", "--split", "0.9,0.1"]),
    ("compare bpe without --vocab-size", ["compare", "{corpus}", "--tokenizers", "char,bpe"]),
    ("compare missing corpus", ["compare", "missing.txt"]),
    ("summary --cell without sizes", ["summary", "--cell", "rnn"]),
    # Files a user names: never the input or a checkpoint, never a file of another kind without --force, and the
    # parent directory must exist (each exits 2 before writing anything).
    ("chat history that is the user's notes", ["chat", "{run}", "--history", "{notes}"]),
    ("chat history that is a checkpoint", ["chat", "{run}", "--history", "{ckptcopy}", "--force"]),
    ("export over the checkpoint it reads", ["export", "{run}", "--out", "{run}/best.safetensors"]),
    ("export over a checkpoint, --force", ["export", "{run}", "--out", "{run}/latest.safetensors", "--force"]),
    ("inspect over the checkpoint it reads", ["inspect", "{run}/best.safetensors", "--out", "{run}/best.safetensors"]),
    ("inspect --npz over a checkpoint", ["inspect", "{run}", "--npz", "{ckptcopy}"]),
    ("export over the user's notes", ["export", "{run}", "--out", "{notes}"]),
    ("inspect over the user's notes", ["inspect", "{run}", "--out", "{notes}"]),
    ("corpus over the user's notes", ["corpus", "--out", "{notes}", "--wheel", "{zip}"]),
    ("export into a missing directory", ["export", "{run}", "--out", "/nonexistent/dir/p.html"]),
    ("inspect into a missing directory", ["inspect", "{run}", "--out", "/nonexistent/dir/p.html"]),
    ("inspect --npz into a missing directory", ["inspect", "{run}", "--npz", "/nonexistent/dir/a.npz"]),
    ("chat history in a missing directory", ["chat", "{run}", "--history", "/nonexistent/dir/h"]),
    # Messages that name what was typed, and headers that disagree with their tensors.
    ("--resume with a malformed --size", ["train", "{corpus}", "--resume", "--size", "banana"]),
    ("a duration of 31 years", ["train", "{corpus}", "--max-time", "1e9"]),
    ("an interval too large for a number", ["train", "{corpus}", "--eval-every", "1e400"]),
    ("a zero duration", ["train", "{corpus}", "--max-time", "0"]),
    ("compare budget of 0 steps", ["compare", "{corpus}", "--budget", "0steps"]),
    ("compare budget of 31 years", ["compare", "{corpus}", "--budget", "1e9"]),
    ("header edited to another hidden size", ["generate", "{edited}"]),
    ("--init-from an edited header", ["train", "{corpus}", "--init-from", "{edited}", "--max-steps", "1", *TINY]),
    ("a size no machine holds", ["train", "{corpus}", "--size", "99999x9", "--max-steps", "3", "--bptt", "8",
                                 "--batch-size", "4"]),
    ("a size no machine holds, by --hidden/--layers", ["train", "{corpus}", "--hidden", "99999", "--layers", "9",
                                                       "--max-steps", "3", "--bptt", "8", "--batch-size", "4"]),
    ("a size no machine holds, dry run", ["train", "{corpus}", "--size", "99999x9", "--dry-run", "--bptt", "8",
                                          "--batch-size", "4"]),
    ("--init-from a vocabulary that lacks --val-file's characters",
     ["train", "{corpus}", "--init-from", "{run}", "--val-file", "{korean}", "--max-steps", "1"]),
]


class Malicious:
    """Unpickling this would create a file: the proof that nothing was executed is that it never appears."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def make_files(tmp: Path) -> dict[str, str]:
    import pickle
    import zipfile

    import torch
    from safetensors.torch import save_file

    files = {"dir": tmp / "somedir", "empty": tmp / "empty.txt", "binary": tmp / "bin.dat", "latin1": tmp / "latin1.txt",
             "cutoff": tmp / "cutoff.txt", "random": tmp / "random.bin", "short": tmp / "short.txt",
             "corpus": tmp / "corpus.txt", "pickle": tmp / "evil.safetensors", "zip": tmp / "model.pt",
             "foreign": tmp / "foreign.safetensors", "korean": tmp / "korean.txt", "run": tmp / "run",
             "notes": tmp / "notes.txt", "ckptcopy": tmp / "copy.safetensors"}
    files["dir"].mkdir()
    files["empty"].write_text("")
    files["binary"].write_bytes(b"hello\x00world")
    files["latin1"].write_bytes("caf\xe9 au lait".encode("latin-1"))
    files["cutoff"].write_bytes("fine text then 한".encode()[:-1])
    files["random"].write_bytes(bytes(range(1, 256)) * 4)  # no NUL: the UTF-8 check must catch it
    files["short"].write_text("tiny")
    files["corpus"].write_text(TEXT)
    files["pickle"].write_bytes(pickle.dumps(Malicious()))
    with zipfile.ZipFile(files["zip"], "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"weights": [1, 2, 3]}))
    save_file({"w": torch.zeros(2)}, str(files["foreign"]))
    files["korean"].write_text("동해 물과 백두산이\n")
    files["notes"].write_text("".join(f"note {i}\n" for i in range(1, 2501)))
    trained = subprocess.run([sys.executable, "-m", "rnnlm", "train", str(files["corpus"]), "--out", str(files["run"]),
                              "--max-steps", "5", *TINY], cwd=tmp, capture_output=True, text=True)
    if trained.returncode != 0:
        sys.exit(f"could not train the tiny model: {trained.stderr}")
    best = files["run"] / "best.safetensors"
    data = best.read_bytes()
    files["ckptcopy"].write_bytes(data)
    files["edited"] = tmp / "edited.safetensors"  # tensors and checksum kept, the header's hidden size changed
    from safetensors import safe_open

    with safe_open(str(best), "pt") as f:
        header = json.loads(f.metadata()["rnnlm"])
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    header["config"]["model"]["hidden_size"] *= 2
    save_file(tensors, str(files["edited"]), metadata={"rnnlm": json.dumps(header)})
    files["truncated"] = tmp / "truncated.safetensors"
    files["truncated"].write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    files["flipped"] = tmp / "flipped.safetensors"
    files["flipped"].write_bytes(bytes(flipped))
    return {k: str(v) for k, v in files.items()}


def main() -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    failures = 0
    print("| # | bad input | command | exit | message |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = make_files(tmp)
        for i, (what, argv) in enumerate(CASES, 1):
            args = [a.format(**files) for a in argv]
            scratch = tmp / f"case{i}"  # its own cwd: no ./checkpoints from earlier cases
            scratch.mkdir()
            proc = subprocess.run([sys.executable, "-m", "rnnlm", *args], cwd=scratch, env=env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            message = next((line for line in lines if line.lower().startswith("error")), lines[-1] if lines else "")
            bad = "Traceback" in proc.stderr or proc.returncode != 2 or (scratch / "PWNED").exists()
            failures += bad
            shown = " ".join(a.replace(tmp_name + "/", "") for a in args)
            print(f"| {i} | {what} | `rnnlm {shown}` | {proc.returncode}{' ✗' if bad else ''} | "
                  f"{message.replace('|', '/')} |")
        notes = Path(files["notes"]).read_text()
        if notes.count("\n") != 2500 or Path(files["ckptcopy"]).read_bytes() != Path(files["run"], "best.safetensors").read_bytes():
            print("a refused case still changed a file it named", file=sys.stderr)
            failures += 1
    print(f"\n{len(CASES)} cases, {failures} failing", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
