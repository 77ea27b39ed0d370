#!/usr/bin/env bash
# Per-stage overhead of a no-op stage: median wall time over many runs, side by
# side in the same run with git rev-parse HEAD, python3 -c pass and az --version.
# Targets: <= 10 ms median, >= 30x faster than az.
#   bench/noop_overhead.sh [BUILD_DIR]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$PWD/$build/bin/mlstage"
plugins="$PWD/$build/tests/plugins"
runs=${RUNS:-200}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
test -x "$bin" || { echo "build first: cmake --build $build" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The stage runs in this repository (git metadata is part of the overhead),
# with its run folders in a scratch workspace.
mlstage_cmd="$bin run bench/noop.yml --plugin-path $plugins --workspace $tmp/ws -q"
"$bin" run bench/noop.yml --plugin-path "$plugins" --workspace "$tmp/ws" -q >/dev/null

# What the stage cannot avoid, for scale: starting a process that only initialises libgit2
# (Debian's mbedTLS build decodes the whole CA bundle there) and starting mlstage itself.
python=$(command -v /usr/bin/python3 || command -v python3)
extra=()
if [[ -x "$build/bench/libgit2_init_bench" ]]; then
  extra=(-n "libgit2 init alone" "$PWD/$build/bench/libgit2_init_bench")
fi
hyperfine -N --warmup 20 --runs "$runs" --export-json "$tmp/fast.json" \
  -n "mlstage run (no-op stage)" "$mlstage_cmd" \
  -n "mlstage --version" "$bin --version" \
  "${extra[@]}" \
  -n "git rev-parse HEAD" "git rev-parse HEAD" \
  -n "python3 -c pass" "$python -c pass" >/dev/null
if command -v az >/dev/null; then
  hyperfine -N --warmup 1 --runs "${AZ_RUNS:-10}" --export-json "$tmp/az.json" \
    -n "az --version" "az --version" >/dev/null
fi

python3 - "$tmp" <<'PY'
import json, os, sys
tmp = sys.argv[1]
rows = json.load(open(os.path.join(tmp, "fast.json")))["results"]
if os.path.exists(os.path.join(tmp, "az.json")):
    rows += json.load(open(os.path.join(tmp, "az.json")))["results"]
ms = {r["command"]: r["median"] * 1000 for r in rows}
base = ms["mlstage run (no-op stage)"]
print(f"{'command':<28} {'median ms':>10} {'mean ms':>9} {'runs':>5} {'vs mlstage':>11}")
for r in rows:
    m = r["median"] * 1000
    print(f"{r['command']:<28} {m:>10.2f} {r['mean']*1000:>9.2f} {len(r['times']):>5} {m/base:>10.1f}x")
if "az --version" not in ms:
    print("az --version: not installed (apt-get install azure-cli to compare)")
print(f"target: mlstage median <= 10 ms: {'met' if base <= 10 else 'NOT met'} ({base:.2f} ms)")
if "az --version" in ms:
    ratio = ms["az --version"] / base
    print(f"target: >= 30x faster than az: {'met' if ratio >= 30 else 'NOT met'} ({ratio:.0f}x)")
PY
