#!/usr/bin/env bash
# The README's curl walk-through against a running host: health, engine status,
# pause and resume the engine.
set -euo pipefail
base=${1:-http://127.0.0.1:8080}
show() { printf '\n$ %s\n' "$*"; "$@"; echo; }
show curl -s "$base/api/health/"
show curl -s "$base/api/settings/status"
show curl -s -X PUT -H 'content-type: application/json' -d '{"global_lock": true}' "$base/api/settings/status"
show curl -s -X PUT -H 'content-type: application/json' -d '{"global_lock": false}' "$base/api/settings/status"
# The catalogue the product scripts declared (products/node.lua), filtered by tag.
show curl -s "$base/api/products/?tag=NODE"
