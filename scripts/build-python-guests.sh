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
#   component imports no WASI, see guests/python/README.md), in world
#   app-entities (it exports cairn:durable/entity: no names when the
#   project defines no entities). A project whose
#   cairn.json says {"activities": {"wasi": true}} is built in two parts:
#   <name>.wasm (its orchestrators and entities, --stub-wasi) and <name>.activities.wasm
#   (its activities, with real WASI, and wasi:http when cairn.json also says
#   "http": true; world app-io of guests/wit-io). A component whose
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
    "$cpy" -q -d "$wit_dir" -w app-entities bindings "$bindings"
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

# The WIT of activity parts with HTTP: the contract plus guests/wit-io.
wit_io_dir="$log_dir/wit-io"
mkdir -p "$wit_io_dir"
cp "$wit_dir"/*.wit "$repo_root/guests/wit-io/io.wit" "$wit_io_dir/"
cp -r "$repo_root/guests/wit-io/deps" "$wit_io_dir/deps"
wit_io_files=("$repo_root/guests/wit-io/io.wit" "$repo_root"/guests/wit-io/deps/*.wit)

# The SDK's cairn_sdk/_build.py reads the part a build is from this module.
for role in orchestrators activities; do
    mkdir -p "$log_dir/role-$role"
    echo "ROLE = \"$role\"" >"$log_dir/role-$role/cairn_build_role.py"
done

project_setting() { # dir key -> "true" when cairn.json's activities.<key> is true
    [[ -f "$1/cairn.json" ]] || return 0
    "$python" -c 'import json,sys; print(str(json.load(open(sys.argv[1])).get("activities",{}).get(sys.argv[2]) is True).lower())' \
        "$1/cairn.json" "$2"
}

build_part() { # dir name out part(all|orchestrators|activities) http(true|false) -> builds one component
    local dir="$1" name="$2" out="$3" part="$4" http="$5" stamp inputs tmp start size rel
    local args=(-d "$wit_dir" -w app-entities) flags=(--stub-wasi) paths=(-p "$dir" -p "$py_dir")
    if [[ "$part" == activities ]]; then
        # Activities serve no entities: world app (app-io with HTTP).
        flags=()
        args=(-d "$wit_dir" -w app)
        if [[ "$http" == true ]]; then args=(-d "$wit_io_dir" -w app-io); fi
    fi
    if [[ "$part" != all ]]; then paths+=(-p "$log_dir/role-$part"); fi
    rel="target/guests/python/$(basename "$out")"
    stamp="$out_dir/.$(basename "$out" .wasm).inputs"
    local files=()
    while IFS= read -r f; do files+=("$f"); done < <(find "$dir" \( -name '*.py' -o -name cairn.json \) -not -path '*/durable_functions/*' | LC_ALL=C sort)
    inputs="$(hash_of "${sdk_files[@]}" "${files[@]}" "$wit_dir"/*.wit "${wit_io_files[@]}" "$repo_root/scripts/build-python-guests.sh") $version $part $http"
    if [[ "${CAIRN_PY_FORCE:-0}" != 1 && -f "$out" && "$(cat "$stamp" 2>/dev/null || true)" == "$inputs" ]]; then
        size="$(wc -c <"$out" | tr -d ' ')"
        echo "up to date $rel ($size bytes)"
        return 0
    fi
    tmp="$out.tmp.$$"
    start=$SECONDS
    if ! (cd "$dir" && "$cpy" -q "${args[@]}" componentize main "${paths[@]}" -o "$tmp" "${flags[@]}") \
        >"$log_dir/$(basename "$out").log" 2>&1; then
        rm -f "$tmp"
        echo "build-python-guests: $rel failed:" >&2
        cat "$log_dir/$(basename "$out").log" >&2
        return 1
    fi
    # Rename, so a reader never sees a half-written component.
    mv -f "$tmp" "$out"
    echo "$inputs" >"$stamp"
    size="$(wc -c <"$out" | tr -d ' ')"
    echo "built $rel ($size bytes, $((SECONDS - start)) s)"
}

# One job per component to build: a two-part project is two jobs.
jobs_list=()
for dir in "${dirs[@]}"; do
    name="$(basename "$dir")"
    if [[ "$(project_setting "$dir" wasi)" == true ]]; then
        jobs_list+=("$dir|$name|$out_dir/$name.wasm|orchestrators|false")
        jobs_list+=("$dir|$name|$out_dir/$name.activities.wasm|activities|$(project_setting "$dir" http)")
    else
        jobs_list+=("$dir|$name|$out_dir/$name.wasm|all|false")
    fi
done

failed=0
running=0
for job in "${jobs_list[@]}"; do
    if ((running >= jobs)); then
        wait -n || failed=1
        running=$((running - 1))
    fi
    IFS='|' read -r j_dir j_name j_out j_part j_http <<<"$job"
    build_part "$j_dir" "$j_name" "$j_out" "$j_part" "$j_http" &
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
echo "build-python-guests: ${#jobs_list[@]} components in target/guests/python"
