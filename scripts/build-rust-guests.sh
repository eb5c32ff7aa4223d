#!/usr/bin/env bash
# Builds the Rust guest components (guests/rust) for wasm32-wasip2 and copies
# each example and testing component to target/guests/rust/<name>.wasm.
#
# Idempotent and callable from any directory. Honors CAIRN_GUEST_TARGET_DIR
# (cargo's target directory for the guest workspace; default
# guests/rust/target).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
workspace="$repo_root/guests/rust"
out_dir="$repo_root/target/guests/rust"
target_dir="${CAIRN_GUEST_TARGET_DIR:-$workspace/target}"
triple="wasm32-wasip2"

if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
        rustup target add "$triple"
    fi
fi

locked=()
if [[ -f "$workspace/Cargo.lock" ]]; then
    locked=(--locked)
fi

cd "$workspace"
cargo build --release --target "$triple" --workspace --target-dir "$target_dir" \
    ${locked[@]+"${locked[@]}"}

mkdir -p "$out_dir"
count=0
for crate_dir in "$workspace"/examples/*/ "$workspace"/testing/*/; do
    [[ -f "$crate_dir/Cargo.toml" ]] || continue
    name="$(basename "$crate_dir")"
    artifact="$target_dir/$triple/release/${name//-/_}.wasm"
    if [[ ! -f "$artifact" ]]; then
        echo "build-rust-guests: missing artifact $artifact" >&2
        exit 1
    fi
    # Copy then rename, so a reader never sees a half-written component.
    cp "$artifact" "$out_dir/$name.wasm.tmp"
    mv -f "$out_dir/$name.wasm.tmp" "$out_dir/$name.wasm"
    size="$(wc -c <"$out_dir/$name.wasm" | tr -d ' ')"
    echo "built target/guests/rust/$name.wasm ($size bytes)"
    count=$((count + 1))
done
echo "build-rust-guests: $count components in target/guests/rust"
