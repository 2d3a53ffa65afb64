#!/usr/bin/env python3
"""Runs `meson test` in a build dir and prints one summary line.

Each GoogleTest executable counts its test cases; each end-to-end script
counts the checks it reports on its "e2e: N passed, M failed[, K skipped]"
line; any other test counts as one. The last line is `N passed, N failed, N skipped`.
"""
import json
import os
import re
import subprocess
import sys

build = sys.argv[1] if len(sys.argv) > 1 else "build"
extra = sys.argv[2:]
log = os.path.join(build, "meson-logs", "testlog.json")
try:
    os.remove(log)  # a selection that runs nothing must not count an older run
except OSError:
    pass
rc = subprocess.call(["meson", "test", "-C", build, "--print-errorlogs", "--num-processes", "2"] + extra)

passed = failed = skipped = 0
try:
    lines = open(log).read().splitlines()
except OSError:
    lines = []
for line in lines:
    try:
        t = json.loads(line)
    except ValueError:
        continue
    out = t.get("stdout") or ""
    result = t.get("result")
    gp = re.search(r"\[  PASSED  \] (\d+) tests?", out)
    gf = re.search(r"\[  FAILED  \] (\d+) tests?, listed below", out)
    gs = re.search(r"\[  SKIPPED \] (\d+) tests?", out)
    e2e = re.findall(r"^e2e: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?", out, re.M)
    if gp or gf:
        passed += int(gp.group(1)) if gp else 0
        failed += int(gf.group(1)) if gf else 0
        skipped += int(gs.group(1)) if gs else 0
        if result not in ("OK", "EXPECTEDFAIL") and not gf:
            failed += 1  # crashed or timed out after some cases passed
    elif e2e:
        p, f, s = e2e[-1]
        passed += int(p)
        failed += int(f)
        skipped += int(s or 0)  # skipped checks inside a script that passed
        if result not in ("OK", "SKIP") and int(f) == 0:
            failed += 1  # crashed or timed out after its summary line
    elif result == "SKIP":
        skipped += 1
    elif result in ("OK", "EXPECTEDFAIL"):
        passed += 1
    else:
        failed += 1

if rc != 0 and failed == 0:
    failed += 1  # meson itself failed (e.g. a build error): never report a clean run
print(f"{passed} passed, {failed} failed, {skipped} skipped")
# scripts/bootstrap.sh test runs the suite twice (sanitized, then normal)
# and prints the sum of both as its last line.
if os.environ.get("GRTMP_SUMMARY_FILE"):
    with open(os.environ["GRTMP_SUMMARY_FILE"], "a") as f:
        f.write(f"{build} {passed} {failed} {skipped}\n")
sys.exit(0 if failed == 0 and rc == 0 else 1)
