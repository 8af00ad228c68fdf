#!/bin/bash
# test_vec_cli.sh -- end-to-end checks of `weir vec build|info|verify|retrain` and `weir search`
# on real SIFT data (shared/data/ann, see its README): build and calibrate, info (text and
# JSON), exact and IVF-PQ search against the ground truth, -k, filters, --json, verify,
# retrain, a flipped byte, usage errors, --help of every command.
# Usage: test_vec_cli.sh /path/to/weir, with $WEIR_SHARED pointing at the shared directory.
# Prints one line per check; exits 1 on the first failure, 77 (skip) when the data is missing.
set -u

WEIR=${1:?usage: test_vec_cli.sh /path/to/weir}
case $WEIR in /*) ;; *) WEIR=$PWD/$WEIR ;; esac
ANN=${WEIR_SHARED:-$(dirname "$0")/../../../shared}/data/ann
BASE=$ANN/sift5k_base.fvecs
Q100=$ANN/siftsmall_query.fvecs
GT100=$ANN/sift5k_groundtruth_siftsmallq.ivecs
Q3=$ANN/sift5k_query3.fvecs
GT3=$ANN/sift5k_groundtruth_query3.ivecs
for f in "$BASE" "$Q100" "$GT100" "$Q3" "$GT3"; do
    [ -r "$f" ] || {
        echo "skip: $f is missing (set WEIR_SHARED to the shared directory)"
        exit 77
    }
done
command -v python3 >/dev/null || {
    echo "skip: python3 is needed to read the JSON output"
    exit 77
}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/weir-vec-cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
IX=$TMP/idx
OUT=$TMP/out
ERR=$TMP/err
W=$WEIR
# shellcheck source-path=SCRIPTDIR source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# py 'PYTHON' ARGS...: run a check in python3 with $OUT on stdin; its message is the failure.
py() {
    local code=$1 msg
    shift
    msg=$(python3 -c "$code" "$@" <"$OUT" 2>&1) || fail "${msg:-python check failed}"
}
# flip FILE: invert the byte in the middle of FILE.
flip() {
    python3 -c 'import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 0xFF
open(p, "wb").write(b)' "$1" || fail "could not flip a byte of $1"
}
# Query 0 of siftsmall_query.fvecs as a JSON array (the data README's spot check).
Q0=$(python3 -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read(516)
print(json.dumps(list(struct.unpack("<128f", b[4:]))))' "$Q100") || fail "cannot read $Q100"

# ---------------------------------------------------------------- help
check_help "vec build" index fvecs metric nlist m nbits partitions key-prefix train-threshold \
    recall-targets no-calibrate
check_help "vec info" index json
check_help "vec verify" index
check_help "vec retrain" index recall-targets
check_help "search" index vector fvecs k nprobe refine recall exact filter json
has "$OUT" "-k N"
expect 0 "$W" vec --help
for c in build info verify retrain; do has "$OUT" "$c"; done
expect 0 "$W" --help
has "$OUT" "vec "
has "$OUT" "search "
ok "weir vec --help lists its commands; weir --help lists vec and search"

# ---------------------------------------------------------------- usage errors, no index
expect 2 "$W" vec build --fvecs "$BASE"
has "$ERR" "--index DIR is required"
expect 2 "$W" vec info
has "$ERR" "--index"
expect 2 "$W" search --vector '[1]'
has "$ERR" "--index"
expect 2 "$W" vec build --index "$IX" --fvecs "$BASE" --m 30
has "$ERR" "--m 30 does not divide the dimension 128"
expect 2 "$W" vec build --index "$IX" --fvecs "$BASE" --nbits 3
has "$ERR" "--nbits"
expect 2 "$W" vec build --index "$IX" --fvecs "$BASE" --metric hamming
has "$ERR" "--metric"
expect 2 "$W" vec build --index "$IX" --fvecs "$BASE" --recall-targets 0.9,1.5
has "$ERR" "1.5"
expect 2 "$W" vec build --index "$IX" --fvecs "$BASE" --train-threshold 10
has "$ERR" "below the 256 vectors a training needs"
expect 2 "$W" vec frobnicate --index "$IX"
[ ! -e "$IX" ] || fail "a usage error created $IX"
ok "usage errors exit 2 with the reason and create nothing"

mkdir "$TMP/empty"
expect 1 "$W" vec info --index "$TMP/empty"
has "$ERR" "no vector index in"
expect 1 "$W" vec verify --index "$TMP/empty"
has "$ERR" "no vector index in"
expect 1 "$W" search --index "$TMP/empty" --vector "$Q0"
has "$ERR" "weir vec build"
expect 1 "$W" vec build --index "$IX" --fvecs "$TMP/missing.fvecs"
has "$ERR" "missing.fvecs"
ok "no index or no input file: exit 1 naming it, with a remedy"

# ---------------------------------------------------------------- build, info
expect 0 "$W" vec build --index "$IX" --fvecs "$BASE" --nlist 64 --m 32
has "$OUT" "5000 live"
has "$OUT" "trained: quantizer version 1 on 5000 vectors: nlist 64, m 32, nbits 8"
has "$OUT" "calibration: recall@10"
ok "vec build --nlist 64 --m 32 loads, trains and calibrates 5000 SIFT vectors"

expect 0 "$W" vec info --index "$IX"
has "$OUT" "state: trained"
has "$OUT" "5000 live, 0 deleted"
has "$OUT" "nlist 64, m 32, nbits 8"
has "$OUT" "drift:"
has "$OUT" "calibration: recall@10, made on quantizer version 1 (current)"
for t in 0.9 0.95 0.99; do
    grep -qE "^ +$t +[0-9]+ +[0-9]+ +[01]\.[0-9]{3}" "$OUT" || fail "no calibration line for $t"
done
ok "vec info: trained, 5000 live, nlist/m/nbits, drift, one calibration line per target"

expect 0 "$W" vec info --index "$IX" --json
py 'import json, sys
d = json.load(sys.stdin)
assert d["trained"] is True and d["live"] == 5000 and d["dim"] == 128, d
assert d["quantizer"] == {"nlist": 64, "m": 32, "nbits": 8}, d["quantizer"]
assert d["quant_version"] == 1 and d["code_bytes"] == 5000 * 32, d
c = d["calibration"]
assert c["k"] == 10 and c["quant_version"] == 1 and c["current"] is True, c
assert [p["target"] for p in c["points"]] == [0.9, 0.95, 0.99], c["points"]
for p in c["points"]:
    assert p["nprobe"] >= 1 and 0 <= p["refine"] <= 64 and 0 < p["measured"] <= 1, p
assert "recent_err" in d["drift"] and "trained_imbalance" in d["drift"], d["drift"]'
ok "vec info --json: one object with stats, drift and the calibration"

# ---------------------------------------------------------------- search
expect 0 "$W" search --index "$IX" --vector "$Q0" --exact -k 5
sed -n 3p "$OUT" | grep -qE '^ +1 +147057 +0 +825$' || fail "exact top hit is not 825 at 147057"
ok "search --vector (query 0) --exact: key 825 first, squared L2 147057"

expect 0 "$W" search --index "$IX" --vector "$Q0" --exact -k 5 --json
py 'import json, sys
lines = sys.stdin.read().splitlines()
assert len(lines) == 1, lines
d = json.loads(lines[0])
assert d["query"] == 0 and len(d["results"]) == 5, d
keys = [r["key"] for r in d["results"]]
assert keys[:4] == ["825", "696", "1571", "2716"], keys
assert d["results"][0]["dist"] == 147057 and d["results"][0]["part"] == 0, d["results"][0]
assert all(a["dist"] <= b["dist"] for a, b in zip(d["results"], d["results"][1:]))'
ok "search --json: the data README's top neighbours and distances, best first"

# Every query of the 3-query file, exact, against its ground truth (the first 10 rows).
expect 0 "$W" search --index "$IX" --fvecs "$Q3" --exact --json
py 'import json, struct, sys
gt = open(sys.argv[1], "rb").read()
lines = sys.stdin.read().splitlines()
assert len(lines) == 3, lines
for i, line in enumerate(lines):
    d = json.loads(line)
    want = struct.unpack("<100i", gt[i * 404 + 4:(i + 1) * 404])[:10]
    got = [int(r["key"]) for r in d["results"]]
    assert d["query"] == i and len(got) == 10, d
    assert set(got[:5]) <= set(want), (i, got, want)' "$GT3"
expect 0 "$W" search --index "$IX" --fvecs "$Q3" --exact -k 3
[ "$(grep -c '^query ' "$OUT")" -eq 3 ] || fail "search --fvecs printed $(grep -c '^query ' "$OUT") queries, wanted 3"
has "$OUT" "query 2: 3 results (exact)"
ok "search --fvecs: one block per query; exact results match the ground truth"

# IVF-PQ with the calibration: recall@10 over the 100 siftsmall queries.
expect 0 "$W" search --index "$IX" --fvecs "$Q100" --recall 0.99 --json
py 'import json, struct, sys
gt = open(sys.argv[1], "rb").read()
lines = sys.stdin.read().splitlines()
assert len(lines) == 100, len(lines)
found = 0
for i, line in enumerate(lines):
    d = json.loads(line)
    want = set(struct.unpack("<100i", gt[i * 404 + 4:(i + 1) * 404])[:10])
    found += len(want & {int(r["key"]) for r in d["results"]})
assert found / 1000 >= 0.85, "recall@10 %.3f with --recall 0.99" % (found / 1000)' "$GT100"
expect 0 "$W" search --index "$IX" --vector "$Q0" --recall 0.95
has "$OUT" "calibrated for recall 0.95"
ok "search --recall 0.99: recall@10 >= 0.85 against the ground truth; the header names the setting"

expect 0 "$W" search --index "$IX" --vector "$Q0" -k 3 --nprobe 4 --refine 2
has "$OUT" "3 results (IVF-PQ, nprobe 4, refine 2)"
expect 0 "$W" search --index "$IX" --vector "$Q0" -k7
has "$OUT" "7 results"
expect 0 "$W" search --index "$IX" --vector "$Q0" --k 2
has "$OUT" "2 results"
ok "search -k N, -kN, --k N, --nprobe, --refine"

expect 0 "$W" search --index "$IX" --fvecs "$Q3" -k 4 --filter prefix=30 --json
py 'import json, sys
lines = sys.stdin.read().splitlines()
assert len(lines) == 3, lines
for line in lines:
    r = json.loads(line)["results"]
    assert len(r) == 4 and all(x["key"].startswith("30") for x in r), r'
expect 0 "$W" search --index "$IX" --vector "$Q0" --filter prefix=30 --filter prefix=31
has "$OUT" "0 results"
expect 0 "$W" search --index "$IX" --vector "$Q0" --filter agent=nobody
has "$OUT" "0 results"
expect 0 "$W" search --index "$IX" --vector "$Q0" -k 2 --filter time=..2026-01-01T00:00:00Z
has "$OUT" "2 results"
expect 0 "$W" search --index "$IX" --vector "$Q0" --filter time=1..
has "$OUT" "0 results"
ok "search --filter prefix= (k matching keys), AND of filters, agent=, time=FROM..TO"

# ---------------------------------------------------------------- bad queries
expect 2 "$W" search --index "$IX" --vector '[1, 2, 3]'
has "$ERR" "--vector has 3 numbers; the index in $IX holds vectors of dimension 128"
expect 2 "$W" search --index "$IX" --vector '[1, 2'
has "$ERR" "not valid JSON"
expect 2 "$W" search --index "$IX" --vector '[1, "x"]'
has "$ERR" "element [1] is not a number"
expect 2 "$W" search --index "$IX" --vector '{"a": 1}'
has "$ERR" "JSON array"
expect 2 "$W" search --index "$IX" --fvecs "$GT3"
has "$ERR" "dimension 100"
expect 2 "$W" search --index "$IX" --vector "$Q0" --fvecs "$Q3"
has "$ERR" "not both"
expect 2 "$W" search --index "$IX" --vector "$Q0" --filter color=red
has "$ERR" "unknown kind 'color'"
expect 2 "$W" search --index "$IX" --vector "$Q0" --filter time=5..1
has "$ERR" "FROM is after TO"
expect 2 "$W" search --index "$IX" --vector "$Q0" --recall 2
has "$ERR" "--recall"
expect 2 "$W" vec build --index "$IX" --fvecs "$BASE" --m 16
has "$ERR" "has m 32; --m 16 cannot change it"
ok "bad queries and flags exit 2 with the reason"

# ---------------------------------------------------------------- verify, retrain
expect 0 "$W" vec verify --index "$IX"
grep -q '^ok' "$OUT" || fail "verify did not print ok"
has "$OUT" "5000 live keys"
ok "vec verify: ok and what was checked"

expect 0 "$W" vec retrain --index "$IX"
has "$OUT" "quantizer version 1 -> 2"
has "$OUT" "before: drift"
has "$OUT" "after:  drift"
expect 0 "$W" vec info --index "$IX" --json
py 'import json, sys
d = json.load(sys.stdin)
assert d["quant_version"] == 2 and d["live"] == 5000, d
assert d["calibration"]["quant_version"] == 2, d["calibration"]'
expect 0 "$W" search --index "$IX" --vector "$Q0" --exact -k 1
has "$OUT" "825"
ok "vec retrain: quantizer version 1 -> 2, recalibrated on version 2, saved"

# ---------------------------------------------------------------- damage
cp -r "$IX" "$TMP/bad"
ivv=$(find "$TMP/bad" -name '*.ivv' | head -n 1)
[ -n "$ivv" ] || fail "no .ivv file in $TMP/bad"
flip "$ivv"
name=$(basename "$ivv")
expect 1 "$W" vec verify --index "$TMP/bad"
has "$ERR" "$name"
expect 1 "$W" search --index "$TMP/bad" --vector "$Q0"
has "$ERR" "$name"
expect 1 "$W" vec info --index "$TMP/bad"
has "$ERR" "$name"
ok "a flipped byte in $name: verify, search and info exit 1 naming the file"

rm -rf "$TMP/bad"
cp -r "$IX" "$TMP/bad"
ivk=$(find "$TMP/bad" -name '*.ivk' | head -n 1)
rm -f "$ivk"
expect 1 "$W" vec verify --index "$TMP/bad"
has "$ERR" "$(basename "$ivk")"
expect 1 "$W" search --index "$TMP/bad" --vector "$Q0"
has "$ERR" "$(basename "$ivk")"
ok "a missing file of the index: verify and search exit 1 naming it"

# ---------------------------------------------------------------- small index, partitions
head -c $((516 * 300)) "$BASE" >"$TMP/small.fvecs"
expect 0 "$W" vec build --index "$TMP/small" --fvecs "$TMP/small.fvecs" --key-prefix s/ \
    --partitions 3
has "$OUT" "exact mode"
has "$OUT" "1000 live vectors"
expect 0 "$W" vec info --index "$TMP/small"
has "$OUT" "not trained"
has "$OUT" "300 live"
has "$OUT" "3 partitions"
expect 0 "$W" search --index "$TMP/small" --vector "$Q0" -k 2 --json
py 'import json, sys
r = json.loads(sys.stdin.read())["results"]
assert len(r) == 2 and all(x["key"].startswith("s/") for x in r), r
assert all(x["part"] == int(x["key"][2:]) % 3 for x in r), r'
expect 0 "$W" vec build --index "$TMP/small" --fvecs "$TMP/small.fvecs" --key-prefix t/ \
    --no-calibrate
has "$OUT" "600 live (was 300)"
expect 2 "$W" vec build --index "$TMP/small" --fvecs "$TMP/small.fvecs" --partitions 2
has "$ERR" "has 3 partitions"
ok "below the train threshold: exact mode and why; keys <prefix><row> in partition row % P"

printf 'all %d checks passed\n' "$n"
