#!/usr/bin/env bash
# The agent's share of the demo pipeline's wall time: the pipeline's wall time minus the time
# spent inside the example's own processes (training and the scoring server, timed by
# bench/timed-python, which stands in for python3), over the pipeline's wall time.
# Target: <= 2 %.
#   bench/pipeline_share.sh [BUILD_DIR]        (default: build; RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bin="$PWD/$build/bin/mlstage"
runs=${RUNS:-5}
test -x "$bin" || { echo "build first: cmake --build $build" >&2; exit 1; }
tmp=$(mktemp -d)
standin=""
cleanup() { [[ -n "$standin" ]] && kill "$standin" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
python3 scripts/teams-webhook-standin.py --out "$tmp/cards" --url-file "$tmp/url" >/dev/null 2>&1 &
standin=$!
for _ in $(seq 100); do [[ -s "$tmp/url" ]] && break; sleep 0.05; done
export TEAMS_WEBHOOK_URL
TEAMS_WEBHOOK_URL=$(cat "$tmp/url")

# Each run in a fresh clone: an empty registry, as on a new machine.
results=()
for i in $(seq "$runs"); do
  times="$tmp/times-$i"
  : >"$times"
  git clone -q "$PWD" "$tmp/repo-$i"
  t0=$(date +%s.%N)
  (cd "$tmp/repo-$i" && MLSTAGE_BENCH_TIMES="$times" "$bin" pipeline run tasks/pipeline.yml -q \
    --set python="$tmp/repo-$i/bench/timed-python" >/dev/null)
  t1=$(date +%s.%N)
  results+=("$t0 $t1 $(tr '\n' ' ' <"$times")")
done

python3 - "${results[@]}" <<'PY'
import statistics, sys
rows = []
for run in sys.argv[1:]:
    v = [float(x) for x in run.split()]
    t0, t1, spans = v[0], v[1], list(zip(v[2::2], v[3::2]))
    # time inside the example's processes (they never overlap: stages run one after another)
    inside = sum(e - s for s, e in spans)
    rows.append((t1 - t0, inside, len(spans)))
print(f"{'run':>3} {'pipeline s':>11} {'example s':>10} {'agent s':>8} {'agent share':>12} {'processes':>10}")
for i, (wall, inside, n) in enumerate(rows, 1):
    print(f"{i:>3} {wall:>11.3f} {inside:>10.3f} {wall - inside:>8.3f} {100 * (wall - inside) / wall:>11.2f}% {n:>10}")
share = statistics.median(100 * (w - i) / w for w, i, _ in rows)
print(f"median agent share: {share:.2f} %  (target <= 2 %: {'met' if share <= 2 else 'NOT met'})")
PY
