#!/usr/bin/env bash
# The main job on a fresh Debian machine: installs what it needs, builds mlstage and runs
# the local demo pipeline (train -> evaluate -> register -> deploy -> notify) on the
# example project. Extra arguments go to `mlstage pipeline run` (e.g. --set alpha=100,
# --dry-run). Without TEAMS_WEBHOOK_URL, a local stand-in receives the Teams card.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
echo "==> build" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

standin_pid=""
cleanup() { [[ -n "$standin_pid" ]] && kill "$standin_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [[ -z "${TEAMS_WEBHOOK_URL:-}" ]]; then
  cards=.mlstage/teams-standin
  mkdir -p "$cards"
  rm -f "$cards/url"
  python3 scripts/teams-webhook-standin.py --out "$cards" --url-file "$cards/url" \
    >"$cards/standin.log" 2>&1 &
  standin_pid=$!
  for _ in $(seq 100); do [[ -s "$cards/url" ]] && break; sleep 0.05; done
  [[ -s "$cards/url" ]] || { echo "the Teams stand-in did not start:" >&2; cat "$cards/standin.log" >&2; exit 1; }
  TEAMS_WEBHOOK_URL=$(cat "$cards/url")
  export TEAMS_WEBHOOK_URL
  echo "==> no TEAMS_WEBHOOK_URL: a local stand-in receives the Teams card (saved in $cards/)" >&2
fi

echo "==> mlstage pipeline run tasks/pipeline.yml $*" >&2
build/bin/mlstage pipeline run tasks/pipeline.yml "$@"
