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
# deploy-time check (see guests/js/CHOICE.md). They target world
# app-entities: the build's entry module (generated in guests/js/.build/<name>)
# re-exports the project's index.js and adds the SDK's `cairn:durable/entity`
# export, which lists no entity names when the project defines none.
#
# A project whose cairn.json says {"activities": {"wasi": true}} is built in
# two parts: <name>.wasm, its orchestrators (componentize-qjs as above), and
# <name>.activities.wasm, its activities, bundled with rolldown and built
# with componentize-js (StarlingMonkey: fetch over wasi:http when cairn.json
# also says "http": true, Date, crypto, async/await; files and environment
# through the SDK's fs and env), against world app-js-io of guests/wit-io.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js="$repo_root/guests/js"
out_dir="$repo_root/target/guests/js"
qjs="$js/node_modules/.bin/componentize-qjs"
cjs="$js/node_modules/.bin/componentize-js"
rolldown="$js/node_modules/.bin/rolldown"
installed="$js/node_modules/.package-lock.json"

if [[ ! -x "$qjs" || ! -x "$cjs" || ! -x "$rolldown" || ! -f "$installed" || "$js/package-lock.json" -nt "$installed" || "$js/package.json" -nt "$installed" ]]; then
    echo "build-js-guests: installing the pinned toolchain (npm ci)"
    (cd "$js" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
fi

wasm_tools="$(command -v wasm-tools || true)"
if [[ -z "$wasm_tools" && -x "$HOME/.cargo/bin/wasm-tools" ]]; then
    wasm_tools="$HOME/.cargo/bin/wasm-tools"
fi

mkdir -p "$out_dir"
build_dir="$js/.build"
mkdir -p "$build_dir"
tmp_dir="$(mktemp -d)"
trap 'rm -rf "$tmp_dir"' EXIT
wit_io="$tmp_dir/wit-io"
mkdir -p "$wit_io"
cp "$repo_root"/wit/*.wit "$repo_root/guests/wit-io/io.wit" "$wit_io/"
cp -r "$repo_root/guests/wit-io/deps" "$wit_io/deps"

project_setting() { # dir key -> "true" when cairn.json's activities.<key> is true
    [[ -f "$1/cairn.json" ]] || { echo false; return 0; }
    node -e 'const c = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(String(c.activities?.[process.argv[2]] === true))' \
        "$1/cairn.json" "$2"
}

up_to_date() { # out dir -> whether out is newer than everything it is built from
    [[ -f "$1" && -z "${CAIRN_JS_FORCE:-}" ]] &&
        [[ -z "$(find "$2" "$js/sdk" "$repo_root/wit" "$repo_root/guests/wit-io" "$js/package-lock.json" "${BASH_SOURCE[0]}" \
            -newer "$1" -print -quit)" ]]
}

check_imports() { # wasm name -> fails when it imports more than cairn:durable
    if [[ -n "$wasm_tools" ]]; then
        local extra
        extra="$("$wasm_tools" component wit "$1" | grep -E '^\s*import ' | grep -v 'cairn:durable/' || true)"
        if [[ -n "$extra" ]]; then
            rm -f "$1"
            echo "build-js-guests: $2 imports more than cairn:durable:" >&2
            echo "$extra" >&2
            exit 1
        fi
    fi
}

entry_module() { # module name -> path of the generated entry module of a componentize-qjs build
    local work="$build_dir/$2"
    mkdir -p "$work"
    printf 'export * from "./%s";\nexport { entityExport as entity } from "cairn-sdk";\n' \
        "$(realpath --relative-to="$work" "$1")" >"$work/entry.js"
    echo "$work/entry.js"
}

build_qjs() { # module out name
    local log entry
    entry="$(entry_module "$1" "$3")"
    log="$(mktemp)"
    if ! "$qjs" --wit "$repo_root/wit" --world app-entities --js "$entry" --module-root "$js" \
        --sync --stub-wasi --opt-size -o "$2.tmp" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log" "$2.tmp"
        echo "build-js-guests: componentize-qjs failed for $3" >&2
        exit 1
    fi
    rm -f "$log"
    # An orchestrator may import nothing but cairn:durable and deterministic
    # WASI; with --stub-wasi the list is cairn:durable only. Check it.
    check_imports "$2.tmp" "$3"
    # Rename, so that a reader never sees a half-written component.
    mv -f "$2.tmp" "$2"
}

build_activities() { # dir name out http
    local dir="$1" name="$2" out="$3" http="$4" work="$build_dir/$2" rel log
    if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
        echo "build-js-guests: $name has WASI activities, whose bundler (rolldown) needs node 20.19 or newer; this is node $(node --version)" >&2
        exit 1
    fi
    local disable=(-d fetch-event)
    if [[ "$http" != true ]]; then disable+=(http); fi
    rel="$(realpath --relative-to="$work" "$dir")"
    mkdir -p "$work"
    printf 'import "../../sdk/wasi-activities.js";\nexport * from "%s/index.js";\n' "$rel" >"$work/activities.js"
    log="$(mktemp)"
    if ! (cd "$js" && "$rolldown" "$work/activities.js" --format esm --platform neutral --file "$work/activities.bundle.js" \
        --external "cairn:durable/orchestration@0.1.0,cairn:durable/activity-context@0.1.0,cairn:durable/entity-context@0.1.0,wasi:filesystem/preopens@0.2.12,wasi:cli/environment@0.2.12") \
        >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "build-js-guests: bundling the activities of $name failed" >&2
        exit 1
    fi
    if ! "$cjs" "$work/activities.bundle.js" --wit "$wit_io" -n app-js-io "${disable[@]}" -o "$out.tmp" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log" "$out.tmp"
        echo "build-js-guests: componentize-js failed for $name" >&2
        exit 1
    fi
    rm -f "$log"
    mv -f "$out.tmp" "$out"
}

count=0
for dir in "$js"/examples/*/ "$js"/testing/*/; do
    [[ -f "$dir/index.js" ]] || continue
    dir="${dir%/}"
    name="$(basename "$dir")"
    out="$out_dir/$name.wasm"
    if [[ "$(project_setting "$dir" wasi)" == true ]]; then
        # Two parts: orchestrators (QuickJS, no WASI) and activities (StarlingMonkey, WASI).
        work="$build_dir/$name"
        mkdir -p "$work"
        echo 'globalThis.__cairnBuildRole = "orchestrators";' >"$work/role.js"
        printf 'import "./role.js";\nexport * from "%s/index.js";\n' "$(realpath --relative-to="$work" "$dir")" >"$work/orchestrators.js"
        count=$((count + 2))
        if up_to_date "$out" "$dir"; then
            echo "up to date target/guests/js/$name.wasm ($(wc -c <"$out" | tr -d ' ') bytes)"
        else
            start=$SECONDS
            build_qjs "$work/orchestrators.js" "$out" "$name"
            echo "built target/guests/js/$name.wasm ($(wc -c <"$out" | tr -d ' ') bytes, $((SECONDS - start)) s)"
        fi
        act_out="$out_dir/$name.activities.wasm"
        if up_to_date "$act_out" "$dir"; then
            echo "up to date target/guests/js/$name.activities.wasm ($(wc -c <"$act_out" | tr -d ' ') bytes)"
        else
            start=$SECONDS
            build_activities "$dir" "$name" "$act_out" "$(project_setting "$dir" http)"
            echo "built target/guests/js/$name.activities.wasm ($(wc -c <"$act_out" | tr -d ' ') bytes, $((SECONDS - start)) s)"
        fi
        continue
    fi
    count=$((count + 1))
    if up_to_date "$out" "$dir"; then
        echo "up to date target/guests/js/$name.wasm ($(wc -c <"$out" | tr -d ' ') bytes)"
        continue
    fi
    build_qjs "$dir/index.js" "$out" "$name"
    echo "built target/guests/js/$name.wasm ($(wc -c <"$out" | tr -d ' ') bytes)"
done
echo "build-js-guests: $count components in target/guests/js"
