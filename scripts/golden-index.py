#!/usr/bin/env python3
"""Rebuilds golden/README.md: one line per vector, gathered from the
README.md of each golden/ folder (which says how each vector was made)."""
import os
import re

root = os.path.join(os.path.dirname(__file__), "..", "golden")
out = [
    "# Golden vectors",
    "",
    "Binary vectors the tests decode field by field and re-encode byte-exact (or, for bytes",
    "captured from other peers, decode and check). One line per vector below, gathered from",
    "each folder's README.md by `scripts/golden-index.py`; the folder README says how its",
    "vectors were made and which test reads them.",
    "",
]
total = 0
for d in sorted(os.listdir(root)):
    path = os.path.join(root, d)
    if not os.path.isdir(path):
        continue
    files = sorted(f for f in os.listdir(path) if f != "README.md")
    readme = os.path.join(path, "README.md")
    lines = open(readme).read().splitlines() if os.path.exists(readme) else []
    entries = {}
    for line in lines:
        m = re.match(r"^[-*] `?([\w.\-]+)`?\s*[—:-]", line.strip())
        if m:
            entries.setdefault(m.group(1), line.strip()[2:].strip())
    out.append(f"## {d}/ ({len(files)} files) — see [{d}/README.md]({d}/README.md)")
    out.append("")
    for f in files:
        desc = entries.get(f)
        if desc is None:
            # Tables and other layouts: find any line that names the file.
            desc = next((l.strip(" |-*") for l in lines if f in l), "(described in the folder README)")
        out.append(f"- {d}/{desc}" if desc.startswith(f) or desc.startswith("`" + f) else f"- {d}/{f} — {desc}")
        total += 1
    out.append("")
out.insert(7, f"{total} files in all.\n")
open(os.path.join(root, "README.md"), "w").write("\n".join(out))
print(f"golden/README.md: {total} files")
