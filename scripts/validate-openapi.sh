#!/usr/bin/env bash
# Validates docs/openapi.yaml (or the documents given) against the OpenAPI
# specification with a pinned openapi-spec-validator, installed once into
# target/venv-openapi (a venv of the machine's python3). Idempotent: pip
# runs only when the pinned version is missing. Exits non-zero when a
# document is invalid.
set -euo pipefail
docs=()
for doc in "$@"; do docs+=("$(realpath "$doc")"); done
cd "$(dirname "$0")/.."
if [ "${#docs[@]}" -eq 0 ]; then docs=(docs/openapi.yaml); fi
VERSION=0.9.0
VENV=target/venv-openapi
PY="$VENV/bin/python"
installed() {
    [ -x "$PY" ] && [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("openapi-spec-validator"))' 2>/dev/null)" = "$VERSION" ]
}
if ! installed; then
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install --disable-pip-version-check --quiet "openapi-spec-validator==$VERSION"
    installed || { echo "openapi-spec-validator $VERSION is not importable in $VENV" >&2; exit 1; }
fi
"$PY" - "${docs[@]}" <<'PY'
import sys

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

failed = False
for path in sys.argv[1:]:
    # Duplicate keys are legal YAML to PyYAML (the last wins) but make the
    # document mean something else than it says: refuse them.
    class Strict(yaml.SafeLoader):
        pass

    def no_duplicates(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return loader.construct_mapping(node, deep)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)
    try:
        with open(path, encoding="utf-8") as f:
            yaml.load(f, Loader=Strict)
        spec, _ = read_from_filename(path)
        validate(spec)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed = True
        print(f"{path}: INVALID\n{e}", file=sys.stderr)
    else:
        print(f"{path}: OK")
sys.exit(1 if failed else 0)
PY
