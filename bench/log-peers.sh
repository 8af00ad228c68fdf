#!/usr/bin/env bash
# log-peers.sh -- run weir's log workloads and its peers (fio, Redis Streams, NATS JetStream)
# on this machine in the same run, and print weir's figure, the peer's and the ratio.
#
#   bench/log-peers.sh [--quick] [--runs N] [--dir SCRATCH_PARENT] [--no-install]
#
# Needs a build: `meson setup build && ninja -C build` (weir from $WEIR or build/tools/weir).
# Peers are installed with apt-get when missing (fio redis-server redis-tools nats-server
# libnats-dev jq), run on 127.0.0.1 in a private scratch directory, and stopped by PID at the
# end. Every load is bounded by a count and by `timeout`. Exact peer settings: bench/README.md.
set -euo pipefail

QUICK=0
RUNS=3
PARENT=/tmp
INSTALL=1
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --dir) PARENT=$2; shift ;;
    --no-install) INSTALL=0 ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "log-peers.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$ROOT/build/tools/weir}
BUILD=${BUILD:-$(cd "$(dirname "$WEIR")/.." 2>/dev/null && pwd || echo "$ROOT/build")}
if [ ! -x "$WEIR" ]; then
    echo "log-peers.sh: no weir binary at $WEIR; run 'meson setup build && ninja -C build'" \
        "or set WEIR" >&2
    exit 1
fi

# ------------------------------------------------------------------ sizes
if [ "$QUICK" = 1 ]; then
    QFLAG=--quick
    FIO_SIZE=512M
    W2N=50000     # appends per run (weir W2, redis-benchmark -n, nats_peer --count)
    W3N=300000    # records read back per run (weir W3, Redis XRANGE, NATS consumer)
else
    QFLAG=
    FIO_SIZE=2G
    W2N=200000
    W3N=2000000
fi
LIMIT=600 # seconds: upper bound for any single load command

# ------------------------------------------------------------------ peers present?
need=()
command -v fio >/dev/null || need+=(fio)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v nats-server >/dev/null || need+=(nats-server)
command -v jq >/dev/null || need+=(jq)
pkg-config --exists libnats 2>/dev/null || need+=(libnats-dev)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$INSTALL" = 0 ]; then
        echo "log-peers.sh: missing ${need[*]} (and --no-install given)" >&2
        exit 1
    fi
    SUDO=
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "log-peers.sh: installing ${need[*]}" >&2
    $SUDO apt-get install -y "${need[@]}" >&2
fi
PATH=$PATH:/usr/sbin # nats-server lives in /usr/sbin on Debian

SCRATCH=$PARENT/weir-peers-$$
mkdir -p "$SCRATCH"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Peer drivers: from the meson build, else compiled here.
NATS_PEER=$BUILD/bench/peers/nats_peer
REDIS_PEER=$BUILD/bench/peers/redis_peer
if [ ! -x "$NATS_PEER" ]; then
    NATS_PEER=$SCRATCH/nats_peer
    cc -O2 -std=c11 -D_GNU_SOURCE -o "$NATS_PEER" "$ROOT/bench/peers/nats_peer.c" \
        $(pkg-config --cflags --libs libnats) -lpthread
fi
if [ ! -x "$REDIS_PEER" ]; then
    REDIS_PEER=$SCRATCH/redis_peer
    cc -O2 -std=c11 -D_GNU_SOURCE -o "$REDIS_PEER" "$ROOT/bench/peers/redis_peer.c"
fi

RES=$SCRATCH/peers.jsonl # one JSON object per peer run
WJ=$SCRATCH/weir.jsonl   # weir's --json lines
: >"$RES"
: >"$WJ"
say() { echo "log-peers.sh: $*" >&2; }

# ------------------------------------------------------------------ versions
FIO_V=$(fio --version)
REDIS_V=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')
NATS_V=$(nats-server --version | awk '{print $2}')
LIBNATS_V=$(pkg-config --modversion libnats)

# ------------------------------------------------------------------ weir
say "weir: $WEIR (runs=$RUNS ${QFLAG:-full})"
for w in W1 W2 W3 W4 W5; do
    extra=()
    [ $w = W2 ] && extra=(--records "$W2N")
    [ $w = W3 ] && extra=(--records "$W3N")
    timeout $((LIMIT * 6)) "$WEIR" bench log --workload $w --json --runs "$RUNS" \
        --dir "$SCRATCH" $QFLAG "${extra[@]}" >>"$WJ" || say "weir $w failed (exit $?)"
done
WEIR_V=$(jq -r 'select(.version) | .version' "$WJ" | head -1)

# ------------------------------------------------------------------ fio (W1 disk limit)
# Sequential 1 MiB buffered writes with an fdatasync every 100 writes (100 MiB), on the
# filesystem of the scratch directory: the disk limit for weir's fsync=interval writer.
mkdir -p "$SCRATCH/fio"
for i in $(seq 1 "$RUNS"); do
    say "fio run $i/$RUNS ($FIO_SIZE)"
    timeout $LIMIT fio --name=w1disk --directory="$SCRATCH/fio" --rw=write --bs=1M \
        --size="$FIO_SIZE" --ioengine=psync --fallocate=none --fdatasync=100 --end_fsync=1 \
        --output-format=json >"$SCRATCH/fio.json"
    jq -c '{peer:"fio", test:"seqwrite", mib_s:(.jobs[0].write.bw_bytes/1048576),
        sync_p50_ms:((.jobs[0].sync.lat_ns.percentile["50.000000"] // 0)/1e6)}' \
        "$SCRATCH/fio.json" >>"$RES"
    rm -f "$SCRATCH"/fio/*
done

# ------------------------------------------------------------------ Redis Streams
RPORT=$((20000 + RANDOM % 20000))
mkdir -p "$SCRATCH/redis"
redis-server --port $RPORT --bind 127.0.0.1 --dir "$SCRATCH/redis" --appendonly yes \
    --appendfsync always --save '' --daemonize no >"$SCRATCH/redis/log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    redis-cli -p $RPORT ping >/dev/null 2>&1 && break
    sleep 0.1
done
VAL=$(head -c 100 /dev/zero | tr '\0' v)
rcli() { redis-cli -h 127.0.0.1 -p $RPORT "$@" >/dev/null; }
# redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
# "p95_latency_ms","p99_latency_ms","max_latency_ms"
rbench() { # test-name clients pipeline count
    rcli DEL s
    timeout $LIMIT redis-benchmark -h 127.0.0.1 -p $RPORT -c "$2" -P "$3" -n "$4" --csv \
        XADD s '*' f "$VAL" | tail -1 | tr -d '"' |
        awk -F, -v t="$1" '{printf "{\"peer\":\"redis\",\"test\":\"%s\",\"rps\":%s,\"p50_ms\":%s,\"p99_ms\":%s,\"max_ms\":%s}\n", t, $2, $5, $7, $8}' >>"$RES"
}
say "redis: warm-up"
rbench warmup 64 1 $((W2N / 10))
for i in $(seq 1 "$RUNS"); do
    say "redis run $i/$RUNS: XADD -c 64 -P 1, -c 50 -P 16 (appendfsync always)"
    rbench c64p1 64 1 "$W2N"
    rbench c50p16 50 16 "$W2N"
done
say "redis: loading $W3N entries for XRANGE (appendfsync no while loading, untimed)"
rcli CONFIG SET appendfsync no
rcli DEL s
timeout $LIMIT redis-benchmark -h 127.0.0.1 -p $RPORT -c 50 -P 100 -n "$W3N" -q \
    XADD s '*' f "$VAL" >/dev/null
RLEN=$(redis-cli -p $RPORT XLEN s)
timeout $LIMIT "$REDIS_PEER" xrange --port $RPORT --key s >/dev/null # untimed pass
for i in $(seq 1 "$RUNS"); do
    say "redis run $i/$RUNS: XRANGE read-back of $RLEN entries"
    timeout $LIMIT "$REDIS_PEER" xrange --port $RPORT --key s --page 10000 |
        jq -c '. + {test:"xrange"}' >>"$RES"
done
kill "${PIDS[-1]}"
wait "${PIDS[-1]}" 2>/dev/null || true
unset 'PIDS[-1]'

# ------------------------------------------------------------------ NATS JetStream
NPORT=$((20000 + RANDOM % 20000))
while [ $NPORT = $RPORT ]; do NPORT=$((20000 + RANDOM % 20000)); done
mkdir -p "$SCRATCH/nats"
nats-server -js -sd "$SCRATCH/nats" -a 127.0.0.1 -p $NPORT >"$SCRATCH/nats/log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$NPORT) 2>/dev/null && break
    sleep 0.1
done
NURL=nats://127.0.0.1:$NPORT
npub() { # test-name inflight count
    timeout $LIMIT "$NATS_PEER" pub --url "$NURL" --inflight "$2" --count "$3" --size 100 \
        --time-limit $((LIMIT - 10)) | jq -c --arg t "$1" '. + {test:$t}' >>"$RES"
}
say "nats: warm-up"
npub warmup 64 $((W2N / 10))
for i in $(seq 1 "$RUNS"); do
    say "nats run $i/$RUNS: js_PublishAsync MaxPending 64 and 256"
    npub pub64 64 "$W2N"
    npub pub256 256 "$W2N"
done
say "nats: loading $W3N messages (untimed), then ordered-consumer read-back"
npub load 4096 "$W3N"
timeout $LIMIT "$NATS_PEER" sub --url "$NURL" --count "$W3N" >/dev/null || true
for i in $(seq 1 "$RUNS"); do
    say "nats run $i/$RUNS: read-back of $W3N messages"
    timeout $LIMIT "$NATS_PEER" sub --url "$NURL" --count "$W3N" \
        --time-limit $((LIMIT - 10)) | jq -c '. + {test:"sub"}' >>"$RES"
done
kill "${PIDS[-1]}"
wait "${PIDS[-1]}" 2>/dev/null || true
unset 'PIDS[-1]'

# ------------------------------------------------------------------ table
# wv W VARIANT METRIC: weir's median; pm PEER TEST FIELD: the peers' median of the runs.
wv() {
    jq -r --arg w "$1" --arg v "$2" --arg m "$3" \
        'select(.workload==$w and .variant==$v) | .metrics[$m] |
         if . == null then "-" else (.median|tostring) + (if .noisy then "*" else "" end) end' \
        "$WJ" | head -1 | grep . || echo -
}
pm() {
    jq -s -r --arg p "$1" --arg t "$2" --arg f "$3" \
        '[.[] | select(.peer==$p and .test==$t) | .[$f]] | sort |
         if length == 0 then "-" else .[(length/2|floor)] | tostring end' "$RES"
}
W4V=$(jq -r 'select(.workload=="W4") | .variant' "$WJ" | head -1)
W5V=$(jq -r 'select(.workload=="W5") | .variant' "$WJ" | head -1)
rows=(
    "W1 1KiB payload MiB/s|$(wv W1 value=1024B payload_mib_s)|fio seq 1M fdatasync/100 MiB/s|$(pm fio seqwrite mib_s)|>= 0.8"
    "W1 1KiB on-disk MiB/s|$(wv W1 value=1024B disk_mib_s)|fio seq 1M fdatasync/100 MiB/s|$(pm fio seqwrite mib_s)|"
    "W1 100B records/s|$(wv W1 value=100B records_per_s)|target|5000000|>= 1"
    "W1 100B ack p99 ms|$(wv W1 value=100B ack_p99_ms)|-|-|"
    "W2 in=64 appends/s|$(wv W2 inflight=64 appends_per_s)|redis XADD c64 P1 fsync=always|$(pm redis c64p1 rps)|"
    "W2 in=64 p50 ms|$(wv W2 inflight=64 ack_p50_ms)|redis XADD c64 P1 p50 ms|$(pm redis c64p1 p50_ms)|lower=better"
    "W2 in=64 p99 ms|$(wv W2 inflight=64 ack_p99_ms)|redis XADD c64 P1 p99 ms|$(pm redis c64p1 p99_ms)|lower=better"
    "W2 in=64 appends/s|$(wv W2 inflight=64 appends_per_s)|nats pub MaxPending=64 (no fsync)|$(pm nats pub64 rps)|"
    "W2 in=64 p50 ms|$(wv W2 inflight=64 ack_p50_ms)|nats pub MaxPending=64 p50 ms|$(pm nats pub64 p50_ms)|lower=better"
    "W2 in=64 p99 ms|$(wv W2 inflight=64 ack_p99_ms)|nats pub MaxPending=64 p99 ms|$(pm nats pub64 p99_ms)|lower=better"
    "W2 in=1024 appends/s|$(wv W2 inflight=1024 appends_per_s)|redis XADD c50 P16 (best)|$(pm redis c50p16 rps)|"
    "W2 in=1024 appends/s|$(wv W2 inflight=1024 appends_per_s)|nats pub MaxPending=256|$(pm nats pub256 rps)|"
    "W2 in=1024 p99 ms|$(wv W2 inflight=1024 ack_p99_ms)|redis XADD c50 P16 p99 ms|$(pm redis c50p16 p99_ms)|lower=better"
    "W3 read records/s|$(wv W3 value=100B records_per_s)|redis XRANGE COUNT 10000|$(pm redis xrange rps)|"
    "W3 read records/s|$(wv W3 value=100B records_per_s)|nats ordered consumer|$(pm nats sub rps)|"
    "W4 clean open ms|$(wv W4 "$W4V" clean_open_ms)|-|-|"
    "W4 kill -9 open ms|$(wv W4 "$W4V" crash_open_ms)|-|-|"
    "W5 compact MiB/s|$(wv W5 "$W5V" compact_mib_s)|-|-|"
    "W5 bytes before|$(wv W5 "$W5V" bytes_before)|-|-|"
    "W5 bytes after|$(wv W5 "$W5V" bytes_after)|-|-|"
    "W5 longest stall ms|$(wv W5 "$W5V" stall_max_ms)|(baseline max ms)|$(wv W5 "$W5V" base_max_ms)|"
)
echo
echo "weir $WEIR_V | fio $FIO_V | redis-server $REDIS_V | nats-server $NATS_V (libnats $LIBNATS_V)"
echo "medians of $RUNS runs; * = spread > 30%; ratio = weir / peer${QFLAG:+ (quick sizes)}"
printf '%-24s %12s  %-36s %12s %8s  %s\n' workload weir peer peer-figure ratio note
fmt() { # 5123456.7 -> 5123457, 0.41234 -> 0.412; keeps a trailing '*'
    awk -v x="$1" 'BEGIN { s = ""; if (x ~ /\*$/) { s = "*"; sub(/\*$/, "", x) }
        if (x ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) {
            if (x + 0 >= 1000) printf "%.0f%s", x, s; else printf "%.3g%s", x, s
        } else printf "%s%s", x, s }'
}
for r in "${rows[@]}"; do
    IFS='|' read -r name wfig pname pfig note <<<"$r"
    ratio=$(awk -v a="${wfig%\*}" -v b="$pfig" \
        'BEGIN { if (a+0 > 0 && b+0 > 0) printf "%.2f", a / b; else print "-" }')
    printf '%-24s %12s  %-36s %12s %8s  %s\n' "$name" "$(fmt "$wfig")" "$pname" "$(fmt "$pfig")" \
        "$ratio" "$note"
done
echo
echo "NATS JetStream acks after its file-store write, without an fsync per message (it syncs"
echo "periodically): not durable the way weir fsync=always (W2) and Redis appendfsync always are."
echo "W3: weir reads $W3N records from its log; Redis holds the stream in memory ($RLEN entries)."
if [ -n "${KEEP_JSON:-}" ]; then
    cp "$WJ" "$KEEP_JSON.weir.jsonl"
    cp "$RES" "$KEEP_JSON.peers.jsonl"
fi
