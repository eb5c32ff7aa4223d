"""Checks that the Durable Functions "HelloCities" Python sample runs on Cairn
with only its import and registration lines changed.

examples/hello-cities/durable_functions/HelloCities/__init__.py is the
sample as published (generator style); examples/hello-cities/hello_cities.py
is the orchestrator the hello-cities component is built from. This prints
their diff (difflib) and exits non-zero unless every changed line is an
import or the registration line, and there are at most a few of them.

When the published sample's source document is beside the repository
(../shared/seeds/002_*.txt), it also checks that the kept copy is verbatim.

Run by tests/e2e/python.rs; standalone: python3 guests/python/tests/seed_diff.py
"""

import difflib
import pathlib
import re
import sys

MAX_CHANGED_LINES = 6

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "hello-cities"
ORIGINAL = EXAMPLE / "durable_functions" / "HelloCities" / "__init__.py"
PORTED = EXAMPLE / "hello_cities.py"
REPO = HERE.parent.parent.parent

# A changed line may only be an import or the registration.
ALLOWED = re.compile(r"^[+-](import |from \S+ import |main = df\.Orchestrator\.create\()")


def python_block_of(document):
    """The first Python code block after the first Python tab."""
    tab = document.index("# [Python](#tab/python)")
    start = document.index("```python\n", tab) + len("```python\n")
    return document[start : document.index("```", start)]


def main():
    original = ORIGINAL.read_text()
    ported = PORTED.read_text()
    diff = list(
        difflib.unified_diff(
            original.splitlines(),
            ported.splitlines(),
            "durable_functions/HelloCities/__init__.py",
            "hello_cities.py",
            lineterm="",
            n=0,
        )
    )
    print("\n".join(diff))
    changed = [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    other = [line for line in changed if not ALLOWED.match(line)]
    print(f"changed lines: {len(changed)} ({sum(l[0] == '-' for l in changed)} removed, "
          f"{sum(l[0] == '+' for l in changed)} added)")
    ok = True
    if other:
        print("FAIL: lines other than imports and the registration changed:\n" + "\n".join(other))
        ok = False
    if not changed or len(changed) > MAX_CHANGED_LINES:
        print(f"FAIL: expected 1 to {MAX_CHANGED_LINES} changed lines")
        ok = False

    seeds = sorted((REPO.parent / "shared" / "seeds").glob("002_*.txt"))
    if seeds:
        if python_block_of(seeds[0].read_text()) != original:
            print(f"FAIL: {ORIGINAL.relative_to(REPO)} differs from the sample in {seeds[0].name}")
            ok = False
        else:
            print(f"the kept sample is verbatim from {seeds[0].name}")
    print("seed diff: ok" if ok else "seed diff: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
