"""Rewrite references to the modules issue 19 moved into the ledger kernel (``app/ledger/``).

Run from a checkout: ``python scripts/kernel_renames.py .`` (after the ``git mv``s
listed in docs/adr/0006-the-ledger-kernel.md); then ``ruff check --fix .``.
"""

import re
import subprocess
import sys
from pathlib import Path

MOVES = [  # old dotted path, new dotted path (one that prefixes another comes first)
    ("app.refusals", "app.ledger.summaries"),
    ("app.refusal", "app.ledger.refusal"),
    ("app.db", "app.ledger.engine"),
    ("app.deps", "app.ledger.route"),
    ("app.audit", "app.ledger.recording"),
    ("app.checkpointer", "app.ledger.checkpointer"),
    ("app.ledger_key", "app.ledger.key"),
    ("app.ledger_reader", "app.ledger.reader"),
    ("app.witnessing", "app.witnesses.witnessing"),
]
TREES = ["app", "tests", "bench", "migrations", "docs", "scripts", "README.md"]


def rewrite(text: str) -> str:
    """``text`` with every dotted and file path of a moved module replaced."""
    for old, new in MOVES:
        text = re.sub(r"(?<![\w.])" + re.escape(old) + r"(?![\w])", new, text)
        old_p, new_p = old.replace(".", "/"), new.replace(".", "/")
        text = re.sub(r"(?<![\w/])" + re.escape(old_p) + r"\.py\b", new_p + ".py", text)
    return re.sub(r"^from app import audit, (\w+)$",
                  r"from app import \1\nfrom app.ledger import recording as audit", text,
                  flags=re.M)


def main(root: Path) -> None:
    """Rewrite the tracked files under ``root``."""
    listed = subprocess.run(["git", "ls-files", *TREES], cwd=root,  # noqa: S603, S607
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        path = root / name
        if path.suffix in {".py", ".md", ".ini", ".toml"} and path.is_file() \
                and path.name != Path(__file__).name:
            text = path.read_text()
            if (new := rewrite(text)) != text:
                path.write_text(new)
                print("rewrote", name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
