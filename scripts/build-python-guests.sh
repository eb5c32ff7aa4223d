#!/usr/bin/env bash
# Builds the Python guest components (guests/python) with componentize-py and
# writes each example and testing component to target/guests/python/<name>.wasm.
#
# - Installs the pinned componentize-py (guests/python/requirements.txt) into
#   guests/python/.venv; pip is skipped when the pinned version is already
#   there, so later runs work offline.
# - Generates binding stubs for IDEs and type checkers into
#   guests/python/.bindings (componentize-py generates the real bindings
#   itself at build time).
# - Builds a component per directory with a main.py under
#   guests/python/examples and guests/python/testing, with --stub-wasi (the
#   component imports no WASI, see guests/python/README.md). A component whose
#   sources, WIT and toolchain are unchanged since its last build is kept
#   (builds are not reproducible: rebuilding would change its hash).
#
# Idempotent and callable from any directory. Environment:
#   PYTHON          interpreter that creates the venv (default python3)
#   CAIRN_PY_JOBS   parallel builds (default: number of CPUs)
#   CAIRN_PY_FORCE  1 rebuilds every component
# Arguments: component names to build (default: all).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py_dir="$repo_root/guests/python"
venv="$py_dir/.venv"
out_dir="$repo_root/target/guests/python"
wit_dir="$repo_root/wit"
python="${PYTHON:-python3}"
jobs="${CAIRN_PY_JOBS:-$(nproc 2>/dev/null || echo 2)}"

pin="$(grep -E '^componentize-py==' "$py_dir/requirements.txt")"
version="${pin#componentize-py==}"

# 1. The toolchain, in a project-local venv.
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
installed="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("componentize-py"))' 2>/dev/null || true)"
if [[ "$installed" != "$version" ]]; then
    echo "build-python-guests: installing $pin into guests/python/.venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$py_dir/requirements.txt"
fi
cpy="$venv/bin/componentize-py"

hash_of() { # files... -> one hash of their names and contents
    local f
    for f in "$@"; do
        printf '%s\n' "${f#"$repo_root"/}"
        cat "$f"
    done | sha256sum | cut -c1-32
}

# 2. Binding stubs for IDEs (regenerated when the WIT changes).
wit_hash="$(hash_of "$wit_dir"/*.wit)"
bindings="$py_dir/.bindings"
if [[ "$(cat "$bindings/.wit-hash" 2>/dev/null || true)" != "$wit_hash" ]]; then
    rm -rf "$bindings"
    "$cpy" -q -d "$wit_dir" -w app bindings "$bindings"
    echo "$wit_hash" >"$bindings/.wit-hash"
    echo "build-python-guests: binding stubs in guests/python/.bindings"
fi

# 3. The components.
mkdir -p "$out_dir"
sdk_files=()
while IFS= read -r f; do sdk_files+=("$f"); done < <(find "$py_dir/cairn_sdk" -name '*.py' | LC_ALL=C sort)

wanted=("$@")
dirs=()
for dir in "$py_dir"/examples/*/ "$py_dir"/testing/*/; do
    [[ -f "$dir/main.py" ]] || continue
    name="$(basename "$dir")"
    if ((${#wanted[@]})); then
        [[ " ${wanted[*]} " == *" $name "* ]] || continue
    fi
    dirs+=("${dir%/}")
done
if ((${#dirs[@]} == 0)); then
    echo "build-python-guests: nothing to build" >&2
    exit 1
fi

log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT

build_one() { # dir
    local dir="$1" name stamp inputs out tmp start size
    name="$(basename "$dir")"
    out="$out_dir/$name.wasm"
    stamp="$out_dir/.$name.inputs"
    local files=()
    while IFS= read -r f; do files+=("$f"); done < <(find "$dir" -name '*.py' -not -path '*/durable_functions/*' | LC_ALL=C sort)
    inputs="$(hash_of "${sdk_files[@]}" "${files[@]}" "$wit_dir"/*.wit "$repo_root/scripts/build-python-guests.sh") $version --stub-wasi"
    if [[ "${CAIRN_PY_FORCE:-0}" != 1 && -f "$out" && "$(cat "$stamp" 2>/dev/null || true)" == "$inputs" ]]; then
        size="$(wc -c <"$out" | tr -d ' ')"
        echo "up to date target/guests/python/$name.wasm ($size bytes)"
        return 0
    fi
    tmp="$out.tmp.$$"
    start=$SECONDS
    if ! (cd "$dir" && "$cpy" -q -d "$wit_dir" -w app componentize main \
        -p "$dir" -p "$py_dir" -o "$tmp" --stub-wasi) >"$log_dir/$name.log" 2>&1; then
        rm -f "$tmp"
        echo "build-python-guests: $name failed:" >&2
        cat "$log_dir/$name.log" >&2
        return 1
    fi
    # Rename, so a reader never sees a half-written component.
    mv -f "$tmp" "$out"
    echo "$inputs" >"$stamp"
    size="$(wc -c <"$out" | tr -d ' ')"
    echo "built target/guests/python/$name.wasm ($size bytes, $((SECONDS - start)) s)"
}

failed=0
running=0
for dir in "${dirs[@]}"; do
    if ((running >= jobs)); then
        wait -n || failed=1
        running=$((running - 1))
    fi
    build_one "$dir" &
    running=$((running + 1))
done
while ((running > 0)); do
    wait -n || failed=1
    running=$((running - 1))
done
if ((failed)); then
    echo "build-python-guests: some components failed to build" >&2
    exit 1
fi
echo "build-python-guests: ${#dirs[@]} components in target/guests/python"
