#!/usr/bin/env bash
# Stamping a 1 GiB artefact (hash + in-toto statement) with mlstage, side by side in the same
# run with `openssl dgst -sha256` and `sha256sum` on the same file, page cache warm.
# Targets: <= 1.15x openssl's wall time, peak RSS <= 16 MiB.
#   bench/stamp_1gib.sh [BUILD_DIR]        (default: build; RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$PWD/$build/bin/mlstage"
plugins="$PWD/$build/tests/plugins"
runs=${RUNS:-5}
test -x "$bin" || { echo "build first: cmake --build $build" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
file="$tmp/model.bin"
head -c 1073741824 /dev/urandom >"$file"
cat >"$tmp/stamp.yml" <<YML
task: stamp
plugin: test-plugin
inputs:
  mode: artifact-path
  value: $file
YML
cat "$file" >/dev/null   # warm the page cache for every contender alike

# wall seconds and peak RSS (KiB) of one command, via GNU time
measure() {
  /usr/bin/time -f '%e %M' -o "$tmp/t" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
  cat "$tmp/t"
}

declare -A wall rss
for name in mlstage openssl sha256sum; do wall[$name]=""; rss[$name]=""; done
for i in $(seq "$runs"); do
  read -r w r < <(measure "$bin" run "$tmp/stamp.yml" --plugin-path "$plugins" --workspace "$tmp/ws" -q)
  wall[mlstage]+="$w "; rss[mlstage]+="$r "
  read -r w r < <(measure openssl dgst -sha256 "$file")
  wall[openssl]+="$w "; rss[openssl]+="$r "
  read -r w r < <(measure sha256sum "$file")
  wall[sha256sum]+="$w "; rss[sha256sum]+="$r "
done
# the statement must match sha256sum
want=$(sha256sum "$file" | cut -d' ' -f1)
grep -q "$want" "$file.intoto.json" || { echo "statement digest differs from sha256sum" >&2; exit 1; }

python3 - "$runs" "${wall[mlstage]}" "${rss[mlstage]}" "${wall[openssl]}" "${rss[openssl]}" \
  "${wall[sha256sum]}" "${rss[sha256sum]}" <<'PY'
import statistics, sys
runs = int(sys.argv[1])
vals = sys.argv[2:]
names = ["mlstage run (stamp)", "openssl dgst -sha256", "sha256sum"]
rows = []
for i, n in enumerate(names):
    w = [float(x) for x in vals[2 * i].split()]
    r = [int(x) for x in vals[2 * i + 1].split()]
    rows.append((n, statistics.median(w), max(r) / 1024))
ossl = rows[1][1]
print(f"1 GiB file, page cache warm, {runs} runs each, median wall time")
print(f"{'command':<24} {'median s':>9} {'peak RSS MiB':>13} {'vs openssl':>11}")
for n, w, r in rows:
    print(f"{n:<24} {w:>9.3f} {r:>13.1f} {w / ossl:>10.2f}x")
m = rows[0]
print(f"target: <= 1.15x openssl: {'met' if m[1] <= 1.15 * ossl else 'NOT met'} ({m[1] / ossl:.2f}x)")
print(f"target: peak RSS <= 16 MiB: {'met' if m[2] <= 16 else 'NOT met'} ({m[2]:.1f} MiB)")
PY
