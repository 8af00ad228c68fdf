#!/usr/bin/env bash
# kv-peers.sh -- run the db_bench workloads against RocksDB (db_bench from Debian rocksdb-tools)
# and LevelDB (bench/peers/leveldb_peer, C API) -- and weir, once `weir bench kv` exists -- on
# this machine in the same run, and print one table: weir, RocksDB, LevelDB, weir / best peer.
#
#   bench/kv-peers.sh [--quick] [--num N] [--sync-num N] [--runs N] [--dir SCRATCH_PARENT]
#                     [--no-install]
#
# Keys 16 B, values 100 B, no compression, --num keys (default 1,000,000; --quick 100,000),
# fillrandom sync=1 with --sync-num puts (default 20,000; --quick 5,000). Missing tools are
# installed with apt-get (rocksdb-tools libleveldb-dev jq time). Everything runs in a scratch
# directory under --dir (default /tmp), removed at the end; every command is bounded by its
# count and by `timeout`. Exact settings: bench/README.md, "KV peers".
set -euo pipefail

QUICK=0
RUNS=3
PARENT=/tmp
INSTALL=1
NUM=
SYNCN=
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --num) NUM=$2; shift ;;
    --sync-num) SYNCN=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --dir) PARENT=$2; shift ;;
    --no-install) INSTALL=0 ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "kv-peers.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    NUM=${NUM:-100000}
    SYNCN=${SYNCN:-5000}
else
    NUM=${NUM:-1000000}
    SYNCN=${SYNCN:-20000}
fi
LIMIT=900 # seconds: upper bound for any single load command

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$ROOT/build/tools/weir}
BUILD=${BUILD:-$(cd "$(dirname "$WEIR")/.." 2>/dev/null && pwd || echo "$ROOT/build")}
say() { echo "kv-peers.sh: $*" >&2; }

# ------------------------------------------------------------------ peers present?
need=()
command -v db_bench >/dev/null || need+=(rocksdb-tools)
command -v jq >/dev/null || need+=(jq)
[ -x /usr/bin/time ] || need+=(time)
[ -f /usr/include/leveldb/c.h ] || need+=(libleveldb-dev)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$INSTALL" = 0 ]; then
        say "missing ${need[*]} (and --no-install given)"
        exit 1
    fi
    SUDO=
    [ "$(id -u)" = 0 ] || SUDO=sudo
    say "installing ${need[*]}"
    $SUDO apt-get install -y "${need[@]}" >&2
fi

SCRATCH=$PARENT/weir-kv-peers-$$
mkdir -p "$SCRATCH"
cleanup() { rm -rf "$SCRATCH"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# LevelDB driver: from the meson build, else compiled here.
LEVELDB_PEER=$BUILD/bench/peers/leveldb_peer
if [ ! -x "$LEVELDB_PEER" ]; then
    LEVELDB_PEER=$SCRATCH/leveldb_peer
    cc -O2 -std=c11 -D_GNU_SOURCE -o "$LEVELDB_PEER" "$ROOT/bench/peers/leveldb_peer.c" \
        -lleveldb -lpthread
fi

WJ=$SCRATCH/weir.jsonl     # weir bench kv --json
LJ=$SCRATCH/leveldb.jsonl  # leveldb_peer --json
RR=$SCRATCH/rocksdb.runs   # one line per db_bench run
RJ=$SCRATCH/rocksdb.jsonl  # RocksDB medians, same schema as the other two
RLOG=$SCRATCH/rocksdb.log  # every db_bench stdout
: >"$WJ"
: >"$LJ"
: >"$RR"
: >"$RLOG"

# ------------------------------------------------------------------ weir (when built)
HAVE_WEIR=0
if [ -x "$WEIR" ] && "$WEIR" bench kv --help >/dev/null 2>&1; then
    HAVE_WEIR=1
    say "weir: $WEIR bench kv (num=$NUM, sync-num=$SYNCN, runs=$RUNS)"
    timeout $((LIMIT * 8)) "$WEIR" bench kv --workload all --json --runs "$RUNS" \
        --num "$NUM" --sync-num "$SYNCN" --dir "$SCRATCH" >>"$WJ" ||
        say "weir bench kv failed (exit $?)"
else
    say "weir bench kv is not built yet ($WEIR): peers only"
fi

# ------------------------------------------------------------------ LevelDB
say "leveldb: $LEVELDB_PEER (num=$NUM, sync-num=$SYNCN, runs=$RUNS)"
timeout $((LIMIT * 8)) "$LEVELDB_PEER" --json --runs "$RUNS" --num "$NUM" --sync-num "$SYNCN" \
    --dir "$SCRATCH" --time-limit $((LIMIT - 60)) >"$LJ" || say "leveldb_peer failed (exit $?)"

# ------------------------------------------------------------------ RocksDB db_bench
# live KEYS DRAWS: expected distinct keys after DRAWS uniform draws from KEYS (db_bench's
# fillrandom/overwrite pick rand % num, with repeats).
live() { awk -v n="$1" -v d="$2" 'BEGIN { printf "%.0f", n * (1 - exp(d * log(1 - 1 / n))) }'; }

# rdb RUN WORKLOAD VARIANT DB NUM LIVE_KEYS BENCHMARKS [db_bench flags...]
# Runs db_bench under GNU time (ru_oublock = the process's write_bytes / 512, ru_maxrss) and
# appends one line to $RR: {"workload","variant","run","ok","params","m":{metric: value}}.
# LIVE_KEYS > 0 marks a write workload: write_amp and space_amp are computed.
rdb() {
    local run=$1 wl=$2 var=$3 db=$4 n=$5 livek=$6 list=$7
    shift 7
    local out=$SCRATCH/db_bench.out tim=$SCRATCH/db_bench.time ok=true
    timeout $LIMIT /usr/bin/time -o "$tim" -f '%O %M' db_bench --db="$db" --key_size=16 \
        --value_size=100 --compression_type=none --bloom_bits=10 --num="$n" --histogram=1 \
        --benchmarks="$list" "$@" >"$out" 2>"$SCRATCH/db_bench.err" || {
        say "db_bench $wl $var failed (exit $?): $(tail -2 "$SCRATCH/db_bench.err" | tr '\n' ' ')"
        ok=false
    }
    cat "$out" "$SCRATCH/db_bench.err" >>"$RLOG"
    local oblk rsskb du=0
    read -r oblk rsskb < <(tail -1 "$tim")
    [ "$livek" -gt 0 ] && du=$(du -s -B1 "$db" | cut -f1)
    awk -v b="${list%%,*}" -v wl="$wl" -v var="$var" -v run="$run" -v ok="$ok" -v n="$n" \
        -v wbytes="$((oblk * 512))" -v rss="$rsskb" -v livek="$livek" -v du="$du" \
        -v params="$*" '
        $1 == b && $2 == ":" && /micros\/op/ {
            for (i = 3; i <= NF; i++) {
                if ($i == "ops/sec") ops = $(i - 1)
                if ($i == "seconds") secs = $(i - 1)
                if ($i == "operations;") nops = $(i - 1)
                if ($i == "of" && $(i + 2) == "found)") { f = substr($(i - 1), 2); t = $(i + 1) }
            }
            got = 1
            next
        }
        got && /^Percentiles:/ { p50 = $3; p99 = $7; p999 = $9; exit }
        END {
            if (!got) { ok = "false"; ops = 0; secs = 0; nops = 0 }
            m = sprintf("\"ops_per_s\":%s,\"p50_us\":%s,\"p99_us\":%s,\"p999_us\":%s," \
                        "\"rss_mib\":%.2f,\"seconds\":%s", ops + 0, p50 + 0, p99 + 0,
                        p999 + 0, rss / 1024, secs + 0)
            if (livek > 0 && nops > 0)
                m = m sprintf(",\"write_amp\":%.4f,\"space_amp\":%.4f", wbytes / (nops * 116),
                              du / (livek * 116))
            if (t > 0)
                m = m sprintf(",\"found_pct\":%.3f", 100 * f / t)
            printf "{\"workload\":\"%s\",\"variant\":\"%s\",\"run\":%d,\"ok\":%s,", wl, var,
                   run, ok
            printf "\"params\":{\"num\":%d,\"flags\":\"%s\"},\"m\":{%s}}\n", n, params, m
        }' "$out" >>"$RR"
    say "rocksdb run $run $wl $var: $(jq -r '.m.ops_per_s | tostring + " ops/s"' <(tail -1 "$RR"))"
}

for i in $(seq 1 "$RUNS"); do
    A=$SCRATCH/rocksdb-r$i-fillseq
    B=$SCRATCH/rocksdb-r$i-random
    C=$SCRATCH/rocksdb-r$i-sync
    rdb "$i" fillseq threads=1 "$A" "$NUM" "$NUM" fillseq,waitforcompaction
    rm -rf "$A"
    rdb "$i" fillrandom threads=1 "$B" "$NUM" "$(live "$NUM" "$NUM")" fillrandom,waitforcompaction
    rdb "$i" overwrite threads=1 "$B" "$NUM" "$(live "$NUM" $((2 * NUM)))" \
        overwrite,waitforcompaction --use_existing_db=1
    rdb "$i" readrandom threads=1 "$B" "$NUM" 0 readrandom --use_existing_db=1 --threads=1
    rdb "$i" readrandom threads=2 "$B" "$NUM" 0 readrandom --use_existing_db=1 --threads=2
    rdb "$i" seekrandom threads=1 "$B" "$NUM" 0 seekrandom --use_existing_db=1 --seek_nexts=10
    rdb "$i" readwhilewriting threads=1 "$B" "$NUM" 0 readwhilewriting --use_existing_db=1 \
        --threads=1
    rm -rf "$B"
    rdb "$i" fillrandom sync=1 "$C" "$SYNCN" "$(live "$SYNCN" "$SYNCN")" \
        fillrandom,waitforcompaction --sync=1
    rm -rf "$C"
done

ROCKS_V=$(awk '$1 == "RocksDB:" && $2 == "version" { print $3; exit }' "$RLOG")
ROCKS_ASSERT=0
grep -q 'Assertions are enabled' "$RLOG" && ROCKS_ASSERT=1
# Medians per workload/variant in the schema of `weir bench kv --json` / leveldb_peer --json.
jq -s -c --arg v "${ROCKS_V:-?}" '
    def med: sort | if length % 2 == 1 then .[length / 2 | floor]
                    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    {ops_per_s: "op/s", p50_us: "us", p99_us: "us", p999_us: "us", found_pct: "%",
     write_amp: "x", space_amp: "x", rss_mib: "MiB", seconds: "s"} as $unit
    | group_by([.workload, .variant])[] as $g
    | ($g | map(.m)) as $ms
    | {bench: "kv", peer: "rocksdb", version: $v, workload: $g[0].workload,
       variant: $g[0].variant, ok: ($g | all(.ok)), runs: ($g | length),
       params: ($g[0].params + {key_bytes: 16, value_bytes: 100, compression: "none"}),
       metrics: (reduce ($ms | map(keys) | add | unique)[] as $k ({};
           ($ms | map(.[$k]) | map(select(. != null))) as $vals
           | ($vals | med) as $md
           | .[$k] = {unit: ($unit[$k] // ""), median: $md, min: ($vals | min),
                      max: ($vals | max),
                      spread: (if $md != 0 then (($vals | max) - ($vals | min)) / $md else 0 end),
                      values: $vals}
           | .[$k].noisy = (.[$k].spread > 0.30)))}
    | . + {noisy: ([.metrics[].noisy] | any)}' "$RR" >"$RJ"

# ------------------------------------------------------------------ table
# med FILE WORKLOAD VARIANT METRIC: the median, '*' appended when its spread > 30%.
med() {
    jq -r --arg w "$2" --arg v "$3" --arg m "$4" \
        'select(.workload==$w and .variant==$v) | .metrics[$m] |
         if . == null then "-" else (.median|tostring) + (if .noisy then "*" else "" end) end' \
        "$1" 2>/dev/null | head -1 | grep . || echo -
}
fmt() { # 5123456.7 -> 5123457, 0.41234 -> 0.412; keeps a trailing '*'
    awk -v x="$1" 'BEGIN { s = ""; if (x ~ /\*$/) { s = "*"; sub(/\*$/, "", x) }
        if (x ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) {
            if (x + 0 >= 1000) printf "%.0f%s", x, s; else printf "%.3g%s", x, s
        } else printf "%s%s", x, s }'
}
WEIR_V=$(jq -r 'select(.version) | .version' "$WJ" 2>/dev/null | head -1)
LEVELDB_V=$(jq -r 'select(.version) | .version' "$LJ" 2>/dev/null | head -1)
LBLOOM=$(jq -r 'select(.params.bloom_bits) | .params.bloom_bits' "$LJ" 2>/dev/null | head -1)

W=(fillseq fillrandom overwrite readrandom readrandom seekrandom readwhilewriting fillrandom)
V=(threads=1 threads=1 threads=1 threads=1 threads=2 threads=1 threads=1 sync=1)
L=("fillseq" "fillrandom" "overwrite" "readrandom 1 thr" "readrandom 2 thr"
    "seekrandom +10 next" "readwhilewriting 1r+1w" "fillrandom sync=1")
rows=()
for k in "${!W[@]}"; do
    t=">= 1"
    case "${L[$k]}" in fillrandom | "readrandom 1 thr" | "readrandom 2 thr") t=">= 1.5" ;; esac
    rows+=("${L[$k]} ops/s|${W[$k]}|${V[$k]}|ops_per_s|hi|target $t")
done
for k in "${!W[@]}"; do rows+=("${L[$k]} p99 us|${W[$k]}|${V[$k]}|p99_us|lo|"); done
for k in 0 1 2 7; do rows+=("${L[$k]} write amp|${W[$k]}|${V[$k]}|write_amp|lo|"); done
for k in 0 1 2 7; do rows+=("${L[$k]} space amp|${W[$k]}|${V[$k]}|space_amp|lo|"); done
for k in "${!W[@]}"; do rows+=("${L[$k]} RSS MiB|${W[$k]}|${V[$k]}|rss_mib|lo|"); done

echo
echo "weir ${WEIR_V:-(bench kv not built)} | RocksDB ${ROCKS_V:-?} (Debian rocksdb-tools db_bench)" \
    "| LevelDB ${LEVELDB_V:-?} (C API, bench/peers/leveldb_peer)"
echo "keys 16 B, values 100 B, no compression, num=$NUM (fillrandom sync=1: $SYNCN);" \
    "medians of $RUNS runs; * = spread > 30%"
echo "ratio = weir / best peer (ops/s: higher is better; latency, amplification, RSS: lower is" \
    "better, ratio < 1 = weir better)"
printf '%-32s %12s %12s %12s %8s  %s\n' metric weir RocksDB LevelDB ratio note
for r in "${rows[@]}"; do
    IFS='|' read -r name wl var met dir note <<<"$r"
    wf=$(med "$WJ" "$wl" "$var" "$met")
    rf=$(med "$RJ" "$wl" "$var" "$met")
    lf=$(med "$LJ" "$wl" "$var" "$met")
    ratio=$(awk -v a="${wf%\*}" -v b="${rf%\*}" -v c="${lf%\*}" -v d="$dir" 'BEGIN {
        num = "^-?[0-9.]+([eE][-+]?[0-9]+)?$"; best = ""
        if (b ~ num) best = b + 0
        if (c ~ num && (best == "" || (d == "hi" ? c + 0 > best : c + 0 < best)))
            best = c + 0
        if (a ~ num && best != "" && best > 0) printf "%.2f", a / best
        else print "-" }')
    printf '%-32s %12s %12s %12s %8s  %s\n' "$name" "$(fmt "$wf")" "$(fmt "$rf")" "$(fmt "$lf")" \
        "$ratio" "$note"
done
echo
if [ "$HAVE_WEIR" = 0 ]; then
    echo "weir: 'weir bench kv' is not built yet ($WEIR bench kv --help failed): peers only."
fi
if [ "$ROCKS_ASSERT" = 1 ]; then
    echo "Debian's rocksdb-tools build has assertions enabled (runs 1.3-1.8x slower than an" \
        "optimized build)"
fi
echo "RocksDB: db_bench defaults otherwise (64 MiB write buffer, 8 MiB block cache), Bloom" \
    "10 bits/key; seekrandom --seek_nexts=10; write amp = process write_bytes / (ops x 116 B)," \
    "incl. waitforcompaction; space amp = du / expected live keys x 116 B."
echo "LevelDB: 4 MiB write buffer, 8 MiB block cache, Bloom ${LBLOOM:-0} bits/key; write amp" \
    "after background work is quiet; space amp = du / exact live keys x 116 B; RSS includes" \
    "its mmap'ed table files (RocksDB reads with pread)."
if [ -n "${KEEP_JSON:-}" ]; then
    cp "$WJ" "$KEEP_JSON.weir.jsonl"
    cp "$LJ" "$KEEP_JSON.leveldb.jsonl"
    cp "$RJ" "$KEEP_JSON.rocksdb.jsonl"
    cp "$RR" "$KEEP_JSON.rocksdb-runs.jsonl"
fi
