#!/usr/bin/env bash
# blob_upload.sh — a 1 GiB upload to Azurite in one run: mlstage's block upload (SAS and
# SharedKey) side by side with one `curl -T` PUT (SAS) and `az storage blob upload`.
#
#   bench/blob_upload.sh                 # build/ must hold a built tree (cmake --build build)
#   SIZE_MIB=256 RUNS=1 bench/blob_upload.sh
#
# Prints wall times (median of RUNS), peak RSS (/usr/bin/time -v), ratios, and whether the
# targets hold: mlstage <= 1.25x curl's wall time, >= 3x faster than az, peak RSS <= 32 MiB.
# Only loopback is contacted: Azurite runs in memory with telemetry off, and az runs with its
# own empty config and telemetry off.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
BUILD_DIR=${BUILD_DIR:-$root/build}
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
driver=$BUILD_DIR/bench/blob_upload_bench
azurite=$root/tests/node/node_modules/.bin/azurite-blob
account=devstoreaccount1
# Azurite's published development key.
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
version=2021-12-02

die() { echo "blob_upload.sh: $*" >&2; exit 2; }
[ -x "$driver" ] || die "$driver not built: cmake --build $BUILD_DIR --target blob_upload_bench"
[ -x "$azurite" ] || die "Azurite missing: npm ci --prefix tests/node"
[ -x /usr/bin/time ] || die "/usr/bin/time missing: apt-get install time"
for tool in curl openssl node sha256sum; do
    command -v "$tool" >/dev/null || die "$tool missing"
done

work=$(mktemp -d)
azurite_pid=
stop_azurite() {
    if [ -n "$azurite_pid" ]; then
        kill -TERM -- "-$azurite_pid" 2>/dev/null || true
        wait "$azurite_pid" 2>/dev/null || true
        azurite_pid=
    fi
}
cleanup() {
    stop_azurite
    rm -rf "$work"
}
trap cleanup EXIT

# A fresh, empty emulator for every upload: Azurite in memory slows down as it accumulates
# blobs, which would favour whichever tool runs first.
start_azurite() {
    local port
    port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    mkdir -p "$work/azurite"
    (cd "$work/azurite" && exec setsid "$azurite" --blobHost 127.0.0.1 --blobPort "$port" \
        --inMemoryPersistence --silent --disableTelemetry >"$work/azurite.log" 2>&1) &
    azurite_pid=$!
    endpoint=http://127.0.0.1:$port/$account
    for _ in $(seq 1 300); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.1
    done
    curl -s -o /dev/null "http://127.0.0.1:$port/" || die "Azurite did not start: $(cat "$work/azurite.log")"
    curl -sS -f -X PUT -H "x-ms-version: $version" -H "Content-Length: 0" \
        "$endpoint/bench?restype=container&$sas" >/dev/null
    connstr="DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$key;BlobEndpoint=$endpoint;"
}

# An account SAS (2019-12-12 string-to-sign), signed with the key.
# (Piped, not captured: $(...) would drop the string-to-sign's final newline.)
se=2099-01-01T00:00:00Z
hexkey=$(printf '%s' "$key" | base64 -d | od -An -v -tx1 | tr -d ' \n')
sig=$(printf '%s\nrwdlac\nb\nsco\n\n%s\n\n\n2019-12-12\n' "$account" "$se" |
    openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64 -w0)
sig=$(node -e 'console.log(encodeURIComponent(process.argv[1]))' "$sig")
sas="sv=2019-12-12&ss=b&srt=sco&sp=rwdlac&se=$se&sig=$sig"

file=$work/model.bin
echo "making a ${SIZE_MIB} MiB file of random bytes ..." >&2
head -c "${SIZE_MIB}M" /dev/urandom >"$file"
want=$(sha256sum "$file" | cut -d' ' -f1)
cat "$file" >/dev/null # every tool reads it from the page cache

has_az=0
command -v az >/dev/null && has_az=1
export AZURE_CONFIG_DIR=$work/azconfig AZURE_CORE_COLLECT_TELEMETRY=false \
    AZURE_CORE_SURVEY_MESSAGE=false AZURE_CORE_ONLY_SHOW_ERRORS=true

# run NAME CMD...: wall seconds and peak RSS (KiB) of one run, from /usr/bin/time -v.
run() {
    local name=$1
    shift
    if ! /usr/bin/time -v -o "$work/time" "$@" >"$work/out.$name" 2>&1; then
        echo "$name failed:" >&2
        cat "$work/out.$name" "$work/time" >&2
        exit 1
    fi
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$work/time")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time")
    echo "$wall $rss"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

verify() { # blob name: the stored bytes hash to the file's digest
    local got
    got=$(curl -sS -f -H "x-ms-version: $version" "$endpoint/bench/$1?$sas" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "$1: stored blob hashes to $got, not $want"
}

# CPU seconds Azurite has used so far: on two cores it, not the client, is the bottleneck.
emulator_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$azurite_pid/stat"
}

declare -A walls rss emu
tools=(mlstage-sas mlstage-sharedkey curl)
[ "$has_az" = 1 ] && tools+=(az)
for r in $(seq 1 "$RUNS"); do
    for t in "${tools[@]}"; do
        start_azurite
        cpu0=$(emulator_cpu)
        case $t in
        mlstage-sas) res=$(run "$t" "$driver" "$endpoint" bench "$file" mlstage.bin --sas "$sas") ;;
        mlstage-sharedkey) res=$(run "$t" "$driver" "$endpoint" bench "$file" mlstage-sk.bin \
            --shared-key "$account" "$key") ;;
        curl) res=$(run "$t" curl -sS -f -o /dev/null -T "$file" -X PUT \
            -H "x-ms-blob-type: BlockBlob" -H "x-ms-version: $version" \
            "$endpoint/bench/curl.bin?$sas") ;;
        az) res=$(run "$t" az storage blob upload --connection-string "$connstr" \
            --container-name bench --name az.bin --file "$file" --overwrite --output none) ;;
        esac
        walls[$t]+="${res% *} "
        emu[$t]+="$(bc -l <<<"$(emulator_cpu) - $cpu0") "
        if [ "${res#* }" -gt "${rss[$t]:-0}" ]; then rss[$t]=${res#* }; fi
        echo "run $r: $t ${res% *} s, ${res#* } KiB, Azurite CPU $(tr ' ' '\n' <<<"${emu[$t]}" | grep . | tail -1) s" >&2
        case $t in
        mlstage-sas) verify mlstage.bin
            grep -q "$want" "$work/out.$t" || die "mlstage reported another digest: $(cat "$work/out.$t")" ;;
        mlstage-sharedkey) verify mlstage-sk.bin ;;
        curl) verify curl.bin ;;
        az) verify az.bin ;;
        esac
        stop_azurite
    done
done

med() { tr ' ' '\n' <<<"${walls[$1]}" | grep . | median; }
emed() { tr ' ' '\n' <<<"${emu[$1]}" | grep . | median; }
m=$(med mlstage-sas)
mk=$(med mlstage-sharedkey)
c=$(med curl)
echo
echo "Blob upload of ${SIZE_MIB} MiB to Azurite $(node -e "console.log(require('$root/tests/node/node_modules/azurite/package.json').version)"), median of $RUNS run(s), all blobs verified by SHA-256:"
row() { # label, tool key, wall
    printf '%-38s %9.2f %15.1f %17.2f\n' "$1" "$3" "$(bc -l <<<"${rss[$2]}/1024")" "$(emed "$2")"
}
printf '%-38s %9s %15s %17s\n' tool "wall (s)" "peak RSS (MiB)" "Azurite CPU (s)"
row "mlstage (4 MiB blocks x4, SAS)" mlstage-sas "$m"
row "mlstage (4 MiB blocks x4, SharedKey)" mlstage-sharedkey "$mk"
row "curl -T (one Put Blob, SAS)" curl "$c"
if [ "$has_az" = 1 ]; then
    a=$(med az)
    row "az storage blob upload (azure-cli $(dpkg-query -W -f='${Version}' azure-cli 2>/dev/null || echo '?'))" az "$a"
else
    echo "az storage blob upload: not installed (apt-get install azure-cli)"
fi
echo
ratio_c=$(bc -l <<<"$m/$c")
printf 'mlstage / curl wall time: %.2fx (target <= 1.25x): %s\n' "$ratio_c" \
    "$( (($(bc <<<"$ratio_c <= 1.25"))) && echo met || echo MISSED)"
if [ "$has_az" = 1 ]; then
    ratio_a=$(bc -l <<<"$a/$m")
    printf 'az / mlstage wall time: %.2fx (target >= 3x): %s\n' "$ratio_a" \
        "$( (($(bc <<<"$ratio_a >= 3"))) && echo met || echo MISSED)"
fi
peak=$(bc -l <<<"${rss[mlstage-sas]}/1024")
printf 'mlstage peak RSS: %.1f MiB (target <= 32 MiB): %s\n' "$peak" \
    "$( (($(bc <<<"$peak <= 32"))) && echo met || echo MISSED)"
