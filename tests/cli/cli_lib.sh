# cli_lib.sh -- the check helpers shared by the CLI test scripts (sourced, not run).
# The caller sets OUT and ERR (scratch files) and W (the weir binary) before using them.
# shellcheck shell=bash
n=0

ok() {
    n=$((n + 1))
    printf 'ok %d - %s\n' "$n" "$1"
}
fail() {
    printf 'FAIL - %s\n' "$1" >&2
    for f in "$OUT" "$ERR"; do
        [ -s "$f" ] && head -n 20 "$f" | sed "s|^|  $(basename "$f"): |" >&2
    done
    exit 1
}
# expect RC CMD...: run CMD with stdout in $OUT and stderr in $ERR, fail unless it exits RC.
expect() {
    local want=$1 rc
    shift
    "$@" >"$OUT" 2>"$ERR"
    rc=$?
    [ "$rc" -eq "$want" ] || fail "exit status $rc, wanted $want: $*"
}
has() { # has FILE TEXT: FILE contains TEXT (fixed string)
    grep -qF -- "$2" "$1" || fail "$(basename "$1") lacks '$2'"
}
# check_help "SUBCOMMAND WORDS" FLAG...: its --help exits 0, has a usage line, names every flag.
check_help() {
    local sub=$1
    shift
    # shellcheck disable=SC2086 # $sub is one or two words on purpose
    expect 0 "$W" $sub --help
    for f in "$@"; do has "$OUT" "--$f"; done
    has "$OUT" "usage:"
    ok "weir $sub --help names every flag"
}
