# Shared by the CLI tests: run a command and check its exit status, its exact
# first stderr line (or a substring), and optionally its last stdout line.
#   expect STATUS 'stderr line' CMD...      stderr's first line must equal it
#   expect_sub STATUS 'substring' CMD...    stderr's first line must contain it
# Both also hold every failure to the message convention (docs/cli.md): exactly
# one line on stderr, plus the short usage line ("usage: bvtool ...") for a
# misuse (status 2).
# Counts passes and failures; `finish` prints "cli: N passed, N failed" and
# exits non-zero on any failure.
pass=0
fail=0
out="$BV_TMP/cli.$$.out"
err="$BV_TMP/cli.$$.err"

run() {
	set +e
	"$@" >"$out" 2>"$err"
	status=$?
	set -e
}

ok() { pass=$((pass + 1)); }
bad() {
	fail=$((fail + 1))
	echo "FAIL: $*" >&2
	echo "  stdout: $(tail -n 3 "$out")" >&2
	echo "  stderr: $(cat "$err")" >&2
}

# 0 when stderr holds what a failure of status $status may print: one line, or
# for a usage error (2) that line and the usage line
convention() {
	n=$(wc -l <"$err")
	if [ "$status" = 2 ]; then
		[ "$n" -eq 2 ] && sed -n 2p "$err" | grep -q '^usage: bvtool '
	else
		[ "$n" -eq 1 ]
	fi
}

expect() {
	want_status=$1 want_err=$2
	shift 2
	run "$@"
	got_err=$(head -n 1 "$err")
	if [ "$status" = "$want_status" ] && [ "$got_err" = "$want_err" ]; then
		convention && ok || bad "$* -> stderr breaks the one-line convention: $(cat "$err")"
	else
		bad "$* -> status $status (want $want_status), stderr '$got_err' (want '$want_err')"
	fi
}

expect_sub() {
	want_status=$1 want_err=$2
	shift 2
	run "$@"
	got_err=$(head -n 1 "$err")
	case "$got_err" in
	*"$want_err"*)
		if [ "$status" != "$want_status" ]; then bad "$* -> status $status (want $want_status)"
		elif ! convention; then bad "$* -> stderr breaks the one-line convention: $(cat "$err")"
		else ok; fi ;;
	*) bad "$* -> stderr '$got_err' lacks '$want_err' (status $status)" ;;
	esac
}

# assert 'message' CMD...: CMD must succeed
assert() {
	msg=$1
	shift
	if "$@"; then ok; else
		fail=$((fail + 1))
		echo "FAIL: $msg" >&2
	fi
}

finish() {
	rm -f "$out" "$err"
	echo "cli: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
}

# refuse_rows DB TABLE EXPR: from now on an insert into TABLE whose row fails
# EXPR is refused ("CHECK constraint failed: refused_by_a_test_check"), the
# rows already there staying as they are: a test's way to make a write fail.
# A CHECK constraint can refuse a row but not alter one, so, unlike a trigger
# (which bvtool refuses in a database), it leaves the database bvtool's.
refuse_rows() {
	/usr/bin/python3 - "$@" <<'PY'
import sqlite3, sys
path, table, check = sys.argv[1:4]
db = sqlite3.connect(path)
(sql,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (table,)).fetchone()
end = sql.rindex(")")  # the column list's, before any WITHOUT ROWID
sql = sql[:end] + ", CONSTRAINT refused_by_a_test_check CHECK (" + check + ")" + sql[end:]
db.execute("PRAGMA writable_schema = ON")
db.execute("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (sql, table))
db.commit()
PY
}

# snapshots_sum DB: a checksum of every snapshot keyed by its cell (method,
# temperature, seed, init, epoch, split), whatever the run ids: two databases
# with the same sum hold the same snapshots byte for byte (collect --jobs,
# shards and merge, MPI, Slurm).
snapshots_sum() {
	sqlite3 "$1" "SELECT r.method, IFNULL(r.temperature, ''), r.seed, r.init, s.epoch, s.split,
	              hex(s.logits) FROM snapshots s JOIN runs r ON r.id = s.run_id
	              ORDER BY 1, 2, 3, 4, 5, 6" | cksum
}
