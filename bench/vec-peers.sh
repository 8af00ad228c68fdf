#!/usr/bin/env bash
# vec-peers.sh -- IVF-PQ: weir (`weir bench vec`) against Faiss (bench/peers/faiss_vec.py,
# Debian python3-faiss) on the same synthetic data sets, same parameters, same run; prints
# the build figures, the recall-vs-QPS curves and the ratio the target is stated in.
#
#   bench/vec-peers.sh [--quick] [--runs N] [--dir SCRATCH_PARENT] [--no-install]
#                      [--sets easy,hard,d384] [--nbits 8,4] [--nlist 1024] [--m 32]
#                      [--m4 M] [--refine R[,R]] [--refine4 R[,R]] [--nprobe LIST] [--single]
#
# Data: `weir bench vec-gen --preset SET` (1 M x 128 for easy/hard, 500 k x 384 for d384,
# 1000 queries, exact top-100 ground truth; --quick: 100,000 base vectors, 200 queries) in a
# scratch directory under --dir (default /tmp), removed at the end. Each engine builds
# IVF{nlist},PQ{m} with nbits 8 (Faiss: PQ{m}) and IVF{nlist},PQ{m4} with nbits 4 (Faiss:
# fast-scan PQ{m4}x4fs; --m4 defaults to 2 * --m, the same code bytes per vector), re-rank
# factor --refine (default 0 = none; --refine4 for the 4-bit runs, default --refine; either
# may be a list, 8,16: each factor is a configuration of its own, measured on the one build),
# then searches k=10 at each --nprobe (default 1,2,3,4,6,8,12,16,24,32,48,64,96,128) with 1
# and 2 threads, the whole query set per call (--single: also one query per call), --runs
# timed calls (default 3) after a warm-up. For each Faiss point (recall r, QPS f) the table
# gives the best weir QPS among weir points of the same configuration (nbits, refine) and
# thread count with recall >= r, and weir / Faiss. With both nbits, a last table per set
# compares the two frontiers: each point of Faiss's recall-QPS Pareto frontier (over all its
# configurations) against weir's best point over all of its configurations with recall >= r,
# overall and for r >= 0.95.
# Missing peers are installed with apt-get (python3-faiss libopenblas0-openmp python3-numpy
# jq). WEIR (default build/tools/weir) and VECGEN (default "$WEIR bench vec-gen"; when weir
# lacks it, bench/wb_vecgen.c is compiled into the scratch directory) override the tools;
# KEEP_JSON=/tmp/out keeps /tmp/out.<set>-nbits<b>.{faiss,weir}.jsonl.
set -euo pipefail

QUICK=0
RUNS=3
PARENT=/tmp
INSTALL=1
SETS=easy,hard,d384
NBITS=8,4
NLIST=1024
M=32
M4=
REFINE=0
REFINE4=
NPROBE=1,2,3,4,6,8,12,16,24,32,48,64,96,128
SINGLE=0
while [ $# -gt 0 ]; do
    case "$1" in
    --runs | --dir | --sets | --nbits | --nlist | --m | --m4 | --refine | --refine4 | --nprobe)
        [ $# -ge 2 ] || { echo "vec-peers.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;
    esac
    case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --dir) PARENT=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --sets) SETS=$2; shift ;;
    --nbits) NBITS=$2; shift ;;
    --nlist) NLIST=$2; shift ;;
    --m) M=$2; shift ;;
    --m4) M4=$2; shift ;;
    --refine) REFINE=$2; shift ;;
    --refine4) REFINE4=$2; shift ;;
    --nprobe) NPROBE=$2; shift ;;
    --single) SINGLE=1 ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "vec-peers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "vec-peers.sh: $*" >&2; }
isnum() { [[ $1 =~ ^[0-9]+$ ]]; }
for v in RUNS NLIST M; do
    if ! isnum "${!v}" || [ "${!v}" -lt 1 ]; then
        say "--${v,,} '${!v}': expected a positive integer"
        exit 2
    fi
done
M4=${M4:-$((2 * M))}
REFINE4=${REFINE4:-$REFINE}
isnum "$M4" && [ "$M4" -ge 1 ] || { say "--m4 '$M4': expected a positive integer"; exit 2; }
for r in "$REFINE" "$REFINE4"; do
    [[ $r =~ ^[0-9]+(,[0-9]+)*$ ]] ||
        { say "--refine/--refine4 '$r': expected 0 (none) or factors >= 1, R,R,..."; exit 2; }
done
[[ $NPROBE =~ ^[0-9]+(,[0-9]+)*$ ]] || { say "--nprobe '$NPROBE': expected N,N,..."; exit 2; }
for s in ${SETS//,/ }; do
    case "$s" in
    easy | hard | d384) ;;
    *) say "--sets: unknown set '$s' (easy, hard, d384)"; exit 2 ;;
    esac
done
for b in ${NBITS//,/ }; do
    case "$b" in 4 | 8) ;; *) say "--nbits: '$b' is not 4 or 8"; exit 2 ;; esac
done
THREADS=1,2
K=10
GEN_LIMIT=900    # seconds: data generation + ground truth of one set
ENGINE_LIMIT=3600 # seconds: one engine's build + all its search points on one set

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WEIR=${WEIR:-$ROOT/build/tools/weir}
BUILD=${BUILD:-$(cd "$(dirname "$WEIR")/.." 2>/dev/null && pwd || echo "$ROOT/build")}
PY=/usr/bin/python3 # Debian's: python3-faiss is installed for it, not for a pyenv python3
FAISS_VEC=$ROOT/bench/peers/faiss_vec.py

# ------------------------------------------------------------------ peers present?
need=()
[ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null || need+=(python3-numpy)
[ -x "$PY" ] && "$PY" -c 'import faiss' 2>/dev/null || need+=(python3-faiss)
dpkg -s libopenblas0-openmp >/dev/null 2>&1 || need+=(libopenblas0-openmp)
command -v jq >/dev/null || need+=(jq)
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

SCRATCH=$PARENT/weir-vec-peers-$$
mkdir -p "$SCRATCH"
cleanup() { rm -rf "$SCRATCH"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ tools
# The generator: $VECGEN, else `weir bench vec-gen`, else compiled here from bench/wb_vecgen.c.
if [ -n "${VECGEN:-}" ]; then
    read -r -a GEN <<<"$VECGEN"
elif [ -x "$WEIR" ] && "$WEIR" bench vec-gen --help >/dev/null 2>&1; then
    GEN=("$WEIR" bench vec-gen)
else
    say "weir bench vec-gen not available ($WEIR): compiling bench/wb_vecgen.c"
    printf '%s\n' 'int wb_vecgen_main(int argc, char **argv);' \
        'int main(int argc, char **argv)' \
        '{ argv[0] = "vec-gen"; return wb_vecgen_main(argc, argv); }' >"$SCRATCH/vecgen_main.c"
    if ! cc -O2 -std=c11 -D_GNU_SOURCE -I"$ROOT/bench" -I"$ROOT/bench/include" \
        -I"$ROOT/common/include" -o "$SCRATCH/vecgen" "$SCRATCH/vecgen_main.c" \
        "$ROOT/bench/wb_vecgen.c" "$ROOT/bench/wb_util.c" "$BUILD/common/libwr.a" \
        -lxxhash -luring -lpthread -lm; then
        say "cannot build the generator (needs $BUILD/common/libwr.a:" \
            "meson setup build && ninja -C build)"
        exit 1
    fi
    GEN=("$SCRATCH/vecgen")
fi
HAVE_WEIR=0
if [ -x "$WEIR" ] && "$WEIR" bench vec --help >/dev/null 2>&1; then
    HAVE_WEIR=1
fi
WEIR_V=$("$WEIR" --version 2>/dev/null | head -1 || true)
FAISS_V=$("$PY" -c 'import faiss; print(faiss.__version__)')
say "weir: ${WEIR_V:-not built} ($WEIR); faiss $FAISS_V (Debian python3-faiss, generic build:" \
    "no AVX2 kernels); generator: ${GEN[*]}"
[ "$HAVE_WEIR" = 1 ] ||
    say "weir bench vec: not available ($WEIR bench vec --help failed): Faiss only"

GEN_SIZE=()
[ "$QUICK" = 1 ] && GEN_SIZE=(--n 100000 --queries 200)
SINGLE_ARG=()
[ "$SINGLE" = 1 ] && SINGLE_ARG=(--single)

# ------------------------------------------------------------------ report
# report SET NBITS FAISS_JSONL WEIR_JSONL HAVE_WEIR: the tables of one data set and nbits.
report() {
    "$PY" - "$@" <<'EOF'
import json, sys

name, nbits, fpath, wpath, have_weir = sys.argv[1:6]
have_weir = have_weir == "1"

def load(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out

def pick(lines, event):
    return [x for x in lines if x.get("event") == event]

def num(x, key, fmt):
    v = x.get(key)
    return fmt % v if isinstance(v, (int, float)) else "-"

F, W = load(fpath), load(wpath)
fb, wb = pick(F, "build"), pick(W, "build")
def usable(x):
    return all(isinstance(x.get(k), (int, float)) for k in ("threads", "nprobe", "recall", "qps"))

def rf(x):
    return x.get("refine", 0) or 0

fs = [x for x in pick(F, "search") if usable(x)]
wall = [x for x in pick(W, "search") if usable(x)]
ws = [x for x in wall if x.get("mode", "batch") == "batch"]
scan4 = pick(W, "scan4")

print()
print("== set %s, nbits %s ==" % (name, nbits))
if fb:
    b = fb[0]
    print("data: n=%d dim=%d; IVF%d,PQ%dx%d, refine %d; Faiss index %s" % (
        b["n"], b["dim"], b["nlist"], b["m"], b["nbits"], b["refine"], b["index"]))
print("%-6s %9s %9s %11s %10s  %s" % ("build", "train s", "add s", "bytes/vec", "imbalance",
                                       "training"))
for eng, bl in (("faiss", fb), ("weir", wb)):
    if not bl:
        print("%-6s %9s %9s %11s %10s  %s" % (eng, "-", "-", "-", "-",
              "not available" if eng == "weir" and not have_weir else "no build line"))
        continue
    b = bl[0]
    train = "-"
    if b.get("train_points") is not None:
        train = "%s k-means points, %s iterations" % (b["train_points"],
                                                     b.get("train_niter", "?"))
    print("%-6s %9s %9s %11s %10s  %s" % (eng, num(b, "train_s", "%.2f"), num(b, "add_s", "%.2f"),
          num(b, "bytes_per_vector", "%.1f"), num(b, "imbalance", "%.3f"), train))
if fb and wb and fb[0].get("train_s") and isinstance(wb[0].get("train_s"), (int, float)):
    print("train-time ratio weir / faiss: %.3f" % (wb[0]["train_s"] / fb[0]["train_s"]))
for s in scan4:
    print("weir scan4 kernel: %s vectors/s, %s GB/s, %s of memory bandwidth" % (
        num(s, "vectors_per_s", "%.3g"), num(s, "gb_per_s", "%.2f"),
        num(s, "fraction_of_bandwidth", "%.2f")))

print()
print("recall@10 vs QPS (median of runs; min..max; * = spread > 30%)")
print("%-6s %-6s %6s %7s %6s %8s %12s %21s" % ("engine", "mode", "refine", "threads", "nprobe",
                                                "recall", "QPS", "min..max"))
for eng, pts in (("faiss", fs), ("weir", wall)):
    for x in sorted(pts, key=lambda x: (x.get("mode", "batch"), rf(x), x["threads"], x["nprobe"])):
        lo, hi = x.get("qps_min", x["qps"]), x.get("qps_max", x["qps"])
        star = "*" if x.get("noisy") or (x["qps"] > 0 and (hi - lo) / x["qps"] > 0.30) else ""
        print("%-6s %-6s %6d %7d %6d %8.4f %12.0f %21s" % (
            eng, x.get("mode", "batch"), rf(x), x["threads"], x["nprobe"], x["recall"], x["qps"],
            "%.0f..%.0f%s" % (lo, hi, star)))
if not wall:
    print("weir   weir bench vec: not available" if not have_weir else
          "weir   (no search lines)")

print()
print("target: weir QPS >= 3x Faiss QPS at every recall level (batch mode, same threads, same")
print("refine: weir's best point of the same configuration at recall >= Faiss's)")
print("%6s %7s %6s %8s %12s %12s %8s" % ("refine", "threads", "nprobe", "recall", "faiss QPS",
                                         "best weir", "ratio"))
ratios = []
for x in sorted([x for x in fs if x.get("mode", "batch") == "batch"],
                key=lambda x: (rf(x), x["threads"], x["nprobe"])):
    cand = [w["qps"] for w in ws if w["threads"] == x["threads"] and rf(w) == rf(x) and
            w["recall"] >= x["recall"]]
    best = max(cand) if cand else None
    ratio = best / x["qps"] if best is not None and x["qps"] > 0 else None
    ratios.append(ratio)
    print("%6d %7d %6d %8.4f %12.0f %12s %8s" % (
        rf(x), x["threads"], x["nprobe"], x["recall"], x["qps"],
        "%.0f" % best if best is not None else "-",
        "%.2f" % ratio if ratio is not None else "-"))
if not ws:
    print("%s nbits %s: weir bench vec not available; weir >= 3x Faiss at every recall level: "
          "n/a" % (name, nbits))
elif not ratios:
    print("%s nbits %s: no Faiss points; weir >= 3x Faiss at every recall level: n/a"
          % (name, nbits))
else:
    known = [r for r in ratios if r is not None]
    missing = len(ratios) - len(known)
    worst = "%.2f" % min(known) if known else "-"
    ok = missing == 0 and min(known) >= 3.0
    print("%s nbits %s: min ratio %s over %d Faiss points%s; weir >= 3x Faiss at every recall "
          "level: %s" % (name, nbits, worst, len(ratios),
                         " (%d with no weir point reaching its recall)" % missing
                         if missing else "", "yes" if ok else "no"))
EOF
}

# frontier SET FAISS_JSONL... -- WEIR_JSONL...: each engine's best over its configurations.
frontier() {
    "$PY" - "$@" <<'EOF'
import json, sys

name = sys.argv[1]
sep = sys.argv.index("--")
fpaths, wpaths = sys.argv[2:sep], sys.argv[sep + 1:]

def points(paths):
    out = []
    for path in paths:
        conf = ""
        with open(path) as f:
            for line in f:
                try:
                    x = json.loads(line)
                except ValueError:
                    continue
                if x.get("event") == "build":
                    conf = "PQ%sx%s" % (x.get("m"), x.get("nbits"))
                elif (x.get("event") == "search" and x.get("mode", "batch") == "batch" and
                      all(isinstance(x.get(k), (int, float))
                          for k in ("threads", "nprobe", "recall", "qps"))):
                    x["conf"] = "%s r%s" % (conf, x.get("refine", 0))
                    out.append(x)
    return out

F, W = points(fpaths), points(wpaths)
print()
print("== set %s: frontiers over both nbits (batch mode, same threads) ==" % name)
print("Faiss points on its own recall-QPS Pareto frontier (no Faiss point of any configuration")
print("has recall and QPS at least as high); weir: its best QPS at recall >= Faiss's, any")
print("configuration")
print("%7s %-14s %6s %8s %10s   %-14s %6s %8s %10s %7s" % (
    "threads", "faiss", "nprobe", "recall", "QPS", "weir", "nprobe", "recall", "QPS", "ratio"))
all_r, high_r, missing = [], [], [0, 0]
for t in sorted({x["threads"] for x in F}):
    ft = [x for x in F if x["threads"] == t]
    front = [x for x in ft if not any(y["recall"] >= x["recall"] and y["qps"] >= x["qps"] and
                                      (y["recall"], y["qps"]) != (x["recall"], x["qps"])
                                      for y in ft)]
    for x in sorted(front, key=lambda x: x["recall"]):
        c = [w for w in W if w["threads"] == t and w["recall"] >= x["recall"]]
        best = max(c, key=lambda w: w["qps"]) if c else None
        ratio = best["qps"] / x["qps"] if best and x["qps"] > 0 else None
        if ratio is None:
            missing[0] += 1
            missing[1] += x["recall"] >= 0.95
        else:
            all_r.append(ratio)
            if x["recall"] >= 0.95:
                high_r.append(ratio)
        print("%7d %-14s %6d %8.4f %10.0f   %-14s %6s %8s %10s %7s" % (
            t, x["conf"], x["nprobe"], x["recall"], x["qps"],
            best["conf"] if best else "-", best["nprobe"] if best else "-",
            "%.4f" % best["recall"] if best else "-", "%.0f" % best["qps"] if best else "-",
            "%.2f" % ratio if ratio is not None else "-"))

def verdict(rs, miss):
    if not rs and not miss:
        return "no Faiss frontier points"
    ok = not miss and min(rs) >= 3.0
    return "min weir / Faiss %s over %d points%s; >= 3x: %s" % (
        "%.2f" % min(rs) if rs else "-", len(rs),
        " (and %d Faiss points no weir point reaches)" % miss if miss else "",
        "yes" if ok else "no")

print("%s frontiers, every recall level: %s" % (name, verdict(all_r, missing[0])))
print("%s frontiers, recall >= 0.95: %s" % (name, verdict(high_r, missing[1])))
EOF
}

# ------------------------------------------------------------------ runs
summary=()
for set in ${SETS//,/ }; do
    D=$SCRATCH/$set
    say "generating $set: ${GEN[*]} --preset $set --out $D ${GEN_SIZE[*]}"
    if ! timeout $GEN_LIMIT "${GEN[@]}" --preset "$set" --out "$D" "${GEN_SIZE[@]}"; then
        say "vec-gen failed for $set (exit $?): skipping it"
        continue
    fi
    DATA=(--base "$D/base.fvecs" --query "$D/query.fvecs" --gt "$D/gt.ivecs")
    for nb in ${NBITS//,/ }; do
        MM=$M RR=$REFINE
        [ "$nb" = 4 ] && MM=$M4 RR=$REFINE4
        FJ=$SCRATCH/$set-nbits$nb.faiss.jsonl
        WJ=$SCRATCH/$set-nbits$nb.weir.jsonl
        : >"$FJ"
        : >"$WJ"
        FS=()
        [ "$nb" = 4 ] && FS=(--fastscan)
        say "faiss: $set nbits=$nb m=$MM refine=$RR runs=$RUNS"
        timeout $ENGINE_LIMIT "$PY" "$FAISS_VEC" "${DATA[@]}" --nlist "$NLIST" --m "$MM" \
            --nbits "$nb" "${FS[@]}" --nprobe "$NPROBE" --refine "$RR" --k "$K" \
            --threads "$THREADS" --runs "$RUNS" "${SINGLE_ARG[@]}" >"$FJ" ||
            say "faiss_vec.py failed for $set nbits=$nb (exit $?)"
        if [ "$HAVE_WEIR" = 1 ]; then
            say "weir: $set nbits=$nb m=$MM refine=$RR runs=$RUNS"
            timeout $ENGINE_LIMIT "$WEIR" bench vec "${DATA[@]}" --nlist "$NLIST" --m "$MM" \
                --nbits "$nb" --nprobe "$NPROBE" --refine "$RR" --k "$K" \
                --threads "$THREADS" --runs "$RUNS" "${SINGLE_ARG[@]}" --json >"$WJ" ||
                say "weir bench vec failed for $set nbits=$nb (exit $?)"
        else
            say "weir bench vec: not available"
        fi
        report "$set" "$nb" "$FJ" "$WJ" "$HAVE_WEIR" | tee "$SCRATCH/$set-nbits$nb.report"
        summary+=("$(tail -1 "$SCRATCH/$set-nbits$nb.report")")
        if [ -n "${KEEP_JSON:-}" ]; then
            cp "$FJ" "$KEEP_JSON.$set-nbits$nb.faiss.jsonl"
            cp "$WJ" "$KEEP_JSON.$set-nbits$nb.weir.jsonl"
        fi
    done
    if [ "${NBITS//,/ }" != "${NBITS}" ]; then
        frontier "$set" "$SCRATCH/$set-nbits"*.faiss.jsonl -- "$SCRATCH/$set-nbits"*.weir.jsonl |
            tee "$SCRATCH/$set-frontier.report"
        summary+=("$(tail -2 "$SCRATCH/$set-frontier.report")")
    fi
    rm -rf "$D" # the next set needs the memory and the disk
done

echo
SIZES=
[ "$QUICK" = 1 ] && SIZES=", --quick sizes"
echo "weir ${WEIR_V:-(not built)} | Faiss $FAISS_V (Debian python3-faiss, generic build without" \
    "AVX2 kernels, OpenBLAS OpenMP) | nlist $NLIST, m $M (4-bit: $M4), refine $REFINE" \
    "(4-bit: $REFINE4), k $K," \
    "nprobe $NPROBE, threads $THREADS, medians of $RUNS runs$SIZES"
echo "Faiss bytes/vec = len(faiss.serialize_index) / n: codes + 8-byte ids + centroids +" \
    "codebooks (+ the float vectors with refine); Faiss trains PQ with 25 k-means iterations."
[ "$HAVE_WEIR" = 1 ] || echo "weir bench vec: not available"
for s in "${summary[@]}"; do echo "$s"; done
