#!/bin/bash
# test_cli.sh -- end-to-end checks of the weir CLI: create, produce, consume (plain and as a
# group), input validation, error messages, --help of every subcommand, log info/verify,
# and weir kv (put/get/delete/scan/stats/compact/verify).
# Usage: test_cli.sh /path/to/weir. Prints one line per check; exits 1 on the first failure.
set -u

WEIR=${1:?usage: test_cli.sh /path/to/weir}
case $WEIR in /*) ;; *) WEIR=$PWD/$WEIR ;; esac
TMP=$(mktemp -d "${TMPDIR:-/tmp}/weir-cli.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
D=$TMP/data
OUT=$TMP/out
ERR=$TMP/err
unset WEIR_DIR
# shellcheck source-path=SCRIPTDIR source=cli_lib.sh
. "$(dirname "$0")/cli_lib.sh"

# expect_in RC INPUT CMD...: like expect, with INPUT on stdin.
expect_in() {
    local want=$1 input=$2 rc
    shift 2
    printf '%s' "$input" | "$@" >"$OUT" 2>"$ERR"
    rc=$?
    [ "$rc" -eq "$want" ] || fail "exit status $rc, wanted $want: $*"
}
lines() { # lines FILE N
    local got
    got=$(wc -l <"$1")
    [ "$got" -eq "$2" ] || fail "$(basename "$1") has $got lines, wanted $2"
}

# ---------------------------------------------------------------- version, help, usage
expect 0 "$WEIR" --version
has "$OUT" "weir "
ok "--version"

# Each subcommand with the flags its --help must name.
W=$WEIR
check_help "produce" dir topic key key-field format partition producer-id epoch base-seq \
    batch linger-ms tombstone-null json
check_help "consume" dir topic partition from-offset from-time from group follow \
    timeout-ms max format
check_help "log create" dir topic partitions config
check_help "log list" dir
check_help "log info" dir topic json
check_help "log verify" dir topic
check_help "log dump" dir topic partition from-offset max
check_help "log compact" dir topic
expect 0 "$W" log --help
for s in create list info verify dump compact; do has "$OUT" "$s"; done
expect 0 "$W" --help
ok "weir --help and weir log --help list the commands"

expect 2 "$W" consume --dir "$D" --topic x --no-such-flag
has "$ERR" "--no-such-flag"
expect 2 "$W" produce --dir "$D" --topic
has "$ERR" "--topic"
expect 2 "$W" log create --dir "$D" --topic x --partitions many
has "$ERR" "--partitions"
expect 2 "$W" frobnicate
ok "unknown flag, missing value, bad number, unknown command: exit 2"

# ---------------------------------------------------------------- create, produce lines, consume
expect 0 "$W" log create --dir "$D" --topic lines
has "$OUT" "partitions=1"
expect 1 "$W" log create --dir "$D" --topic lines
has "$ERR" "already exists"
ok "log create, and again: already exists"

printf 'alpha\nbeta\n\ngamma delta\n' >"$TMP/lines.in"
expect 0 sh -c '"$1" produce --dir "$2" --topic lines <"$3"' sh "$W" "$D" "$TMP/lines.in"
printf '0 0\n0 1\n0 2\n0 3\n' >"$TMP/want"
cmp -s "$OUT" "$TMP/want" || fail "produce printed unexpected offsets"
ok "produce lines prints 'partition offset' per record"

expect 0 "$W" consume --dir "$D" --topic lines
cmp -s "$OUT" "$TMP/lines.in" || fail "consume raw differs from the produced lines"
ok "consume returns the lines exactly"

expect 0 "$W" consume --dir "$D" --topic lines --from-offset 2 --max 1 --format json
lines "$OUT" 1
python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).readline())
assert r["partition"] == 0 and r["offset"] == 2 and r["value"] == "" and r["key"] is None, r
assert isinstance(r["timestamp"], int) and r["headers"] == [], r
' "$OUT" || fail "consume --format json record 2"
ok "consume --from-offset --max --format json"

WEIR_DIR=$D expect 0 "$W" log list
has "$OUT" "lines"
ok "log list, with \$WEIR_DIR as the default --dir"

# ---------------------------------------------------------------- ndjson with --key-field
expect 0 "$W" log create --dir "$D" --topic users --partitions 3
: >"$TMP/users.in"
for i in $(seq 1 30); do
    printf '{"id":"user-%d","n":%d,"name":"n\\u00e9 %d"}\n' $((i % 7)) "$i" "$i" >>"$TMP/users.in"
done
expect 0 sh -c '"$1" produce --dir "$2" --topic users --format ndjson --key-field id --batch 8 \
    <"$3"' sh "$W" "$D" "$TMP/users.in"
lines "$OUT" 30
expect 0 "$W" consume --dir "$D" --topic users
sort "$OUT" >"$TMP/got"
sort "$TMP/users.in" >"$TMP/want"
cmp -s "$TMP/got" "$TMP/want" || fail "consume of ndjson differs from the input"
expect 0 "$W" consume --dir "$D" --topic users --format json
python3 -c '
import json, sys
part = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    v = json.loads(r["value"])
    assert r["key"] == v["id"], r
    assert part.setdefault(r["key"], r["partition"]) == r["partition"], "key in two partitions"
assert sum(1 for _ in open(sys.argv[1])) == 30
' "$OUT" || fail "ndjson keys/partitions"
ok "produce ndjson --key-field; consume returns the same lines, keys in one partition each"

# ---------------------------------------------------------------- consumer groups
expect 0 "$W" consume --dir "$D" --topic users --group g1
lines "$OUT" 30
expect 0 "$W" consume --dir "$D" --topic users --group g1
lines "$OUT" 0
expect_in 0 '{"id":"late","n":99}
' "$W" produce --dir "$D" --topic users --format ndjson --key-field id
expect 0 "$W" consume --dir "$D" --topic users --group g1
lines "$OUT" 1
has "$OUT" '"late"'
ok "consume --group: all, then nothing new, then only the new record"

expect 0 "$W" consume --dir "$D" --topic users --follow --timeout-ms 300 --max 5
lines "$OUT" 5
ok "consume --follow --timeout-ms --max stops"

# ---------------------------------------------------------------- validation
expect 0 "$W" log create --dir "$D" --topic bad
expect_in 1 '{"a":1}
{"a":2}
{"a":3,,}
{"a":4}
' "$W" produce --dir "$D" --topic bad --format ndjson --batch 10
has "$ERR" "line 3"
has "$ERR" "invalid JSON"
expect 0 "$W" consume --dir "$D" --topic bad
lines "$OUT" 0
ok "bad JSON on line 3: exit 1, message names line 3, nothing from the batch written"

expect_in 1 '{"a":1}
{"a":2}
{"a":3}
{"a":4,,}
' "$W" produce --dir "$D" --topic bad --format ndjson --batch 2 --linger-ms 60000
has "$ERR" "line 4"
lines "$OUT" 2
expect 0 "$W" consume --dir "$D" --topic bad
lines "$OUT" 2
has "$OUT" '{"a":2}'
ok "bad JSON in the second batch: the first batch stays, the second is not written"

expect_in 1 '{"id":"a"}
{"name":"no id"}
' "$W" produce --dir "$D" --topic bad --format ndjson --key-field id
has "$ERR" "line 2"
has "$ERR" "id"
ok "missing --key-field: error names the line and the field"

expect 0 "$W" log create --dir "$D" --topic small --config max.record.bytes=100
big=$(printf '%0200d' 0)
expect_in 1 "ok
$big
" "$W" produce --dir "$D" --topic small
has "$ERR" "max.record.bytes=100"
has "$ERR" "line 2"
expect 0 "$W" consume --dir "$D" --topic small
lines "$OUT" 0
ok "oversized record: error names the limit, nothing from its batch written"

expect_in 0 '{"id":"k","value":{"x":1}}
{"id":"k","value":null}
' "$W" produce --dir "$D" --topic bad --format ndjson --key-field id --tombstone-null
expect 0 "$W" consume --dir "$D" --topic bad --from-offset 2 --format json
python3 -c '
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
assert len(rs) == 2 and rs[0]["value"] is not None and rs[1]["value"] is None, rs
' "$OUT" || fail "tombstone"
printf 'ok\n\377\376\n' | "$W" produce --dir "$D" --topic small >"$OUT" 2>"$ERR" ||
    fail "produce of non-UTF-8 bytes"
expect 0 "$W" consume --dir "$D" --topic small --format json
has "$OUT" '"value_b64":"//4="'
ok "--tombstone-null gives value null; non-UTF-8 values come back as value_b64"

# ---------------------------------------------------------------- errors that name things
expect 1 "$W" consume --dir "$D" --topic nosuch
has "$ERR" "not found"
has "$ERR" "weir log create --dir $D --topic nosuch"
expect 1 "$W" produce --dir "$D" --topic nosuch </dev/null
has "$ERR" "not found"
expect 1 "$W" log info --dir "$D" --topic nosuch
has "$ERR" "not found"
ok "unknown topic: 'not found' with the command that creates it"

# ---------------------------------------------------------------- info, dump, compact
expect 0 "$W" log info --dir "$D" --topic users --json
python3 -m json.tool "$OUT" >/dev/null || fail "log info --json is not JSON"
python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["topic"] == "users" and len(j["partitions"]) == 3, j
assert sum(p["high_watermark"] for p in j["partitions"]) == 31, j
' "$OUT" || fail "log info --json content"
expect 0 "$W" log info --dir "$D" --topic users
has "$OUT" "partition 2:"
has "$OUT" "high_watermark="
ok "log info (text and --json)"

expect 0 "$W" log dump --dir "$D" --topic lines --max 2
lines "$OUT" 2
has "$OUT" "offset=1"
has "$OUT" "value_len=4"
ok "log dump"

expect 0 "$W" log create --dir "$D" --topic kv --config cleanup=compact
expect_in 0 '{"id":"a","v":1}
{"id":"a","v":2}
{"id":"b","v":1}
' "$W" produce --dir "$D" --topic kv --format ndjson --key-field id
expect_in 1 'no key
' "$W" produce --dir "$D" --topic kv
has "$ERR" "key"
expect 0 "$W" log compact --dir "$D" --topic kv
has "$OUT" "before"
has "$OUT" "after"
expect 1 "$W" log compact --dir "$D" --topic lines
has "$ERR" "cleanup"
ok "log compact; a compacted topic refuses records without a key"

# ---------------------------------------------------------------- verify
expect 0 "$W" log create --dir "$D" --topic seg --config segment.bytes=4096
for i in $(seq 1 400); do printf 'record %04d with some padding to fill segments\n' "$i"; done \
    >"$TMP/seg.in"
expect 0 sh -c '"$1" produce --dir "$2" --topic seg --batch 10 <"$3"' sh "$W" "$D" "$TMP/seg.in"
expect 0 "$W" log verify --dir "$D" --topic seg
ok "log verify passes on a good log"

segs=$(find "$D/seg" -name '*.log' | sort)
[ "$(printf '%s\n' "$segs" | wc -l)" -ge 2 ] || fail "segment.bytes=4096 gave < 2 segments"
seg=$(printf '%s\n' "$segs" | head -n 1) # the oldest segment is sealed
size=$(wc -c <"$seg")
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$seg" | tr -d ' ')
printf "\\$(printf '%03o' $((byte ^ 255)))" | dd of="$seg" bs=1 seek="$off" conv=notrunc \
    2>/dev/null || fail "could not flip a byte"
"$W" log verify --dir "$D" --topic seg >"$OUT" 2>"$ERR"
rc=$?
[ "$rc" -eq 1 ] || fail "log verify exit status $rc on a damaged segment, wanted 1"
cat "$OUT" "$ERR" >"$TMP/all"
has "$TMP/all" "$(basename "$seg")"
grep -qiE '(byte|offset)[^0-9]*[0-9]+' "$TMP/all" || fail "verify output names no byte offset"
ok "log verify fails on a flipped byte in a sealed segment, naming the file and offset"

# ---------------------------------------------------------------- weir kv
check_help "kv get" dir escaped raw
check_help "kv put" dir create wal value-file escaped
check_help "kv delete" dir wal escaped
check_help "kv scan" dir prefix from to limit reverse keys-only escaped
check_help "kv stats" dir json
check_help "kv verify" dir
check_help "kv compact" dir
expect 0 "$W" kv --help
for s in get put delete scan stats verify compact; do has "$OUT" "$s"; done
expect 0 "$W" --help
has "$OUT" "kv "
ok "weir kv --help lists the commands; weir --help lists kv"

K=$TMP/kv
expect 2 "$W" kv
expect 2 "$W" kv --dir "$K" frobnicate
expect 2 "$W" kv get k
has "$ERR" "--dir"
expect 2 "$W" kv --dir "$K" get
expect 2 "$W" kv --dir "$K" get a b
expect 2 "$W" kv --dir "$K" put k
expect 2 "$W" kv --dir "$K" --create put k v --wal sometimes
has "$ERR" "always"
expect 2 "$W" kv --dir "$K" --create put --escaped 'bad\q' v
expect 2 "$W" kv --dir "$K" scan --limit many
expect 2 "$W" kv --dir "$K" scan --bogus
[ ! -e "$K" ] || fail "a usage error created $K"
ok "weir kv usage errors: exit 2, nothing created"

expect 1 "$W" kv --dir "$K" get k
has "$ERR" "no store at $K"
expect 1 "$W" kv --dir "$K" put k v
has "$ERR" "--create"
ok "weir kv without a store: exit 1, says to use --create"

expect 0 "$W" kv --dir "$K" --create put users/u1 alice
has "$OUT" "OK"
for kv in users/u2=bob users/u3=carol items/a=apple items/b=banana zz=last; do
    expect 0 "$W" kv --dir "$K" put "${kv%%=*}" "${kv#*=}"
done
expect 0 "$W" kv --dir "$K" get users/u2
[ "$(cat "$OUT")" = bob ] || fail "get users/u2 gave '$(cat "$OUT")', wanted bob"
expect 0 "$W" kv get --dir "$K" users/u1 # flags before or after the command
[ "$(cat "$OUT")" = alice ] || fail "get users/u1 gave '$(cat "$OUT")'"
expect 1 "$W" kv --dir "$K" get users/nobody
has "$ERR" "not found"
[ ! -s "$OUT" ] || fail "get of a missing key printed something on stdout"
ok "weir kv put/get; a missing key exits 1 with 'not found'"

expect_in 0 'from stdin' "$W" kv --dir "$K" put std/in -
printf 'from\na file' >"$TMP/val"
expect 0 "$W" kv --dir "$K" put std/file --value-file "$TMP/val" --wal interval
expect 0 "$W" kv --dir "$K" get --raw std/file
cmp -s "$OUT" "$TMP/val" || fail "get --raw std/file differs from the file put"
expect 0 "$W" kv --dir "$K" get std/in
[ "$(cat "$OUT")" = 'from stdin' ] || fail "get std/in gave '$(cat "$OUT")'"
expect 0 "$W" kv --dir "$K" put --escaped 'bin\x01\tkey' 'line1\nline2\\'
expect 0 "$W" kv --dir "$K" get --escaped 'bin\x01\tkey'
[ "$(cat "$OUT")" = 'line1\nline2\\' ] || fail "get --escaped gave '$(cat "$OUT")'"
ok "weir kv put from stdin, --value-file, --escaped; get --raw and --escaped"

expect 0 "$W" kv --dir "$K" scan --prefix users/
printf 'users/u1\talice\nusers/u2\tbob\nusers/u3\tcarol\n' | diff - "$OUT" >&2 ||
    fail "scan --prefix users/"
expect 0 "$W" kv --dir "$K" scan --from items/b --to users/u2
printf 'items/b\tbanana\nstd/file\tfrom\\na file\nstd/in\tfrom stdin\nusers/u1\talice\n' |
    diff - "$OUT" >&2 || fail "scan --from --to"
expect 0 "$W" kv --dir "$K" scan --prefix users/ --reverse --keys-only
printf 'users/u3\nusers/u2\nusers/u1\n' | diff - "$OUT" >&2 || fail "scan --reverse --keys-only"
expect 0 "$W" kv --dir "$K" scan --reverse --limit 2
printf 'zz\tlast\nusers/u3\tcarol\n' | diff - "$OUT" >&2 || fail "scan --reverse --limit 2"
expect 0 "$W" kv --dir "$K" scan --prefix bin
printf 'bin\\x01\\tkey\tline1\\nline2\\\\\n' | diff - "$OUT" >&2 || fail "scan escaping"
expect 0 "$W" kv --dir "$K" scan
lines "$OUT" 9
ok "weir kv scan: --prefix, --from/--to, --reverse, --limit, --keys-only, escaping"

expect 0 "$W" kv --dir "$K" delete users/u2
has "$OUT" "OK"
expect 1 "$W" kv --dir "$K" get users/u2
expect 1 "$W" kv --dir "$K" delete users/u2
has "$ERR" "not found"
expect 0 "$W" kv --dir "$K" scan --prefix users/ --keys-only
printf 'users/u1\nusers/u3\n' | diff - "$OUT" >&2 || fail "scan after delete"
ok "weir kv delete; deleting a missing key exits 1"

expect 0 "$W" kv --dir "$K" stats
has "$OUT" "level"
has "$OUT" "SST files"
expect 0 "$W" kv --dir "$K" stats --json
has "$OUT" '"sst_files":'
has "$OUT" '"levels":['
ok "weir kv stats (text and --json)"

expect 0 "$W" kv --dir "$K" compact
has "$OUT" "before:"
has "$OUT" "after:"
expect 0 "$W" kv --dir "$K" scan --keys-only
lines "$OUT" 8
expect 0 "$W" kv --dir "$K" get users/u3
[ "$(cat "$OUT")" = carol ] || fail "get after compact gave '$(cat "$OUT")'"
ok "weir kv compact keeps every live key"

expect 0 "$W" kv --dir "$K" verify
has "$OUT" "OK"
ok "weir kv verify passes on a good store"

sst=$(find "$K" -name '*.sst' | sort | head -n 1)
[ -n "$sst" ] || fail "no .sst file in $K"
off=3 # inside the first data block
byte=$(od -An -tu1 -j "$off" -N1 "$sst" | tr -d ' ')
printf "\\$(printf '%03o' $((byte ^ 255)))" | dd of="$sst" bs=1 seek="$off" conv=notrunc \
    2>/dev/null || fail "could not flip a byte"
"$W" kv --dir "$K" verify >"$OUT" 2>"$ERR"
rc=$?
[ "$rc" -eq 1 ] || fail "kv verify exit status $rc on a damaged .sst, wanted 1"
cat "$OUT" "$ERR" >"$TMP/all"
has "$TMP/all" "$(basename "$sst")"
ok "weir kv verify fails on a flipped byte in an .sst, naming the file"

printf 'all %d checks passed\n' "$n"
