#!/usr/bin/env bash
# Builds the JavaScript guest components (guests/js) with componentize-qjs and
# writes each example and testing component to target/guests/js/<name>.wasm.
#
# Idempotent and callable from any directory:
# - installs the pinned toolchain (guests/js/package-lock.json) with `npm ci`
#   only when guests/js/node_modules is missing or older than the lockfile,
#   so it works offline after the first run;
# - rebuilds a component only when its directory, the SDK, the WIT or the
#   toolchain changed (CAIRN_JS_FORCE=1 rebuilds everything).
#
# Components are built with `--sync --stub-wasi --opt-size`: they import
# nothing but cairn:durable, so their orchestrators pass the host's
# deploy-time check (see guests/js/CHOICE.md).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js="$repo_root/guests/js"
out_dir="$repo_root/target/guests/js"
qjs="$js/node_modules/.bin/componentize-qjs"
installed="$js/node_modules/.package-lock.json"

if [[ ! -x "$qjs" || ! -f "$installed" || "$js/package-lock.json" -nt "$installed" || "$js/package.json" -nt "$installed" ]]; then
    echo "build-js-guests: installing the pinned toolchain (npm ci)"
    (cd "$js" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
fi

wasm_tools="$(command -v wasm-tools || true)"
if [[ -z "$wasm_tools" && -x "$HOME/.cargo/bin/wasm-tools" ]]; then
    wasm_tools="$HOME/.cargo/bin/wasm-tools"
fi

mkdir -p "$out_dir"
count=0
for dir in "$js"/examples/*/ "$js"/testing/*/; do
    [[ -f "$dir/index.js" ]] || continue
    dir="${dir%/}"
    name="$(basename "$dir")"
    out="$out_dir/$name.wasm"
    count=$((count + 1))
    if [[ -f "$out" && -z "${CAIRN_JS_FORCE:-}" ]] &&
        [[ -z "$(find "$dir" "$js/sdk" "$repo_root/wit" "$js/package-lock.json" "${BASH_SOURCE[0]}" \
            -newer "$out" -print -quit)" ]]; then
        echo "up to date target/guests/js/$name.wasm ($(wc -c <"$out" | tr -d ' ') bytes)"
        continue
    fi
    log="$(mktemp)"
    if ! "$qjs" --wit "$repo_root/wit" --world app --js "$dir/index.js" --module-root "$js" \
        --sync --stub-wasi --opt-size -o "$out.tmp" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log" "$out.tmp"
        echo "build-js-guests: componentize-qjs failed for $name" >&2
        exit 1
    fi
    rm -f "$log"
    # An orchestrator may import nothing but cairn:durable and deterministic
    # WASI; with --stub-wasi the list is cairn:durable only. Check it.
    if [[ -n "$wasm_tools" ]]; then
        extra="$("$wasm_tools" component wit "$out.tmp" | grep -E '^\s*import ' | grep -v 'cairn:durable/' || true)"
        if [[ -n "$extra" ]]; then
            rm -f "$out.tmp"
            echo "build-js-guests: $name imports more than cairn:durable:" >&2
            echo "$extra" >&2
            exit 1
        fi
    fi
    # Rename, so that a reader never sees a half-written component.
    mv -f "$out.tmp" "$out"
    echo "built target/guests/js/$name.wasm ($(wc -c <"$out" | tr -d ' ') bytes)"
done
echo "build-js-guests: $count components in target/guests/js"
