# ft_check.sh: what the shell integration tests share; sourced, not run.
#
#   ok TEXT        one passed check ("ok   TEXT")
#   fail TEXT      one failed check ("FAIL TEXT"), counted in $failures
#   die TEXT       a failure that ends the test at once (exit 1)
#   verdict        the end: exit 1 naming the count (and $t) if any check
#                  failed, else "all checks passed"
#   ft_tmp NAME    a fresh directory under the run's FP_TEST_TMP (mode 0755:
#                  servers that drop to their own users must reach it)
#   free_port      a loopback port nobody uses now (fp-server port, as servers'
#                  ports are picked: a race with another process is possible,
#                  and rare)
#   ft_stop_at_exit DIR
#                  at exit, fp-server stop-all DIR; a server that stops with
#                  an error (a sanitizer report: exit 3) fails the test,
#                  whatever its checks said
failures=0

ok() { echo "ok   $*"; }
fail() {
    echo "FAIL $*"
    failures=$((failures + 1))
}
die() {
    echo "FAIL $*"
    exit 1
}

verdict() {
    if [ "$failures" -ne 0 ]; then
        echo "$failures check(s) failed; files in ${t:-?}"
        exit 1
    fi
    echo "all checks passed"
}

# Stops what the script started and exits with its status: $?, or $1
# when a trap of the script's own ran something before.
ft__stop_exit() {
    local rc=$?
    [ $# -eq 0 ] || rc=$1
    if ! "$FP_HARNESS" stop-all "$ft__stop_dir" >/dev/null; then
        echo "FAIL a server stopped with an error (above)"
        rc=1
    fi
    exit $rc
}

ft_stop_at_exit() {
    ft__stop_dir=$1
    trap ft__stop_exit EXIT
}

ft_tmp() {
    local d
    d=$(mktemp -d "$(readlink -f "$FP_TEST_TMP")/$1.XXXXXX")
    chmod 755 "$d"
    echo "$d"
}

free_port() {
    "$FP_HARNESS" port || die "no free port found"
}
