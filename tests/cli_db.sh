#!/bin/sh
# A --db that is not a bvtool database, end to end (issue 10): every command
# (status, report, plot, decompose, collect) refuses it with one line and the
# documented exit status, and leaves it byte for byte as it was, with no -wal,
# -shm or -journal beside it. Damaged schema versions (D3), empty, 1-byte and
# table-less files (D7), FIFOs, directories and devices (D10), read-only
# directories and files as a user other than root (D13), a schema without its
# tables, a malformed page.
# Needs BVTOOL, BV_TMP, sqlite3, Fashion-MNIST from Debian; runuser for D13.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_db.$$
mkdir -p "$t"
chmod 0755 "$t"
cd "$t"
G="--train-subset 500 --teacher mlp:8 --teacher-epochs 1 --student mlp:8 --epochs 1 --seeds 2 --methods ce,kd --temps 4"
q() { sqlite3 "$1" "$2"; }
sum() { cksum <"$1"; }
# no -wal, -shm or -journal beside $1
alone() { [ ! -e "$1-wal" ] && [ ! -e "$1-shm" ] && [ ! -e "$1-journal" ]; }

# every command refuses $2 with status $1 and the message $3 (the path as
# given), and the file stays as it was
refused_by_all() {
	st=$1 db=$2 msg=$3
	s0=$(sum "$db")
	for c in status report decompose; do
		expect "$st" "bvtool $c: $msg" timeout 30 "$bv" $c --db "$db"
	done
	expect "$st" "bvtool plot: $msg" timeout 30 "$bv" plot --db "$db" --out "$t/plot.out"
	expect "$st" "bvtool collect: $msg" timeout 30 "$bv" collect --db "$db" $G
	assert "'$db' unchanged" [ "$(sum "$db")" = "$s0" ]
	assert "nothing beside '$db'" alone "$db"
}

# --- a good database, closed cleanly (no -wal or -shm left)
run "$bv" collect --db good.db $G
assert "collect exits 0 (status $status)" [ "$status" = 0 ]
run "$bv" decompose --db good.db
assert "decompose exits 0 (status $status)" [ "$status" = 0 ]
assert "the good database is alone" alone good.db
craft() { # craft NAME SQL: a copy of good.db changed by SQL
	cp good.db "$1"
	q "$1" "$2" >/dev/null
}

# --- D3: a schema version no bvtool writes
craft minus.db "PRAGMA user_version = -1"
refused_by_all 4 minus.db "'minus.db' has schema version -1, which no bvtool writes (the database is damaged)"
craft future.db "PRAGMA user_version = 6"
refused_by_all 4 future.db "'future.db' has schema version 6, this bvtool reads up to 5: upgrade bvtool"

# --- D7: empty, 1-byte, table-less
printf x >one.db
refused_by_all 4 one.db "'one.db' is not a SQLite database"
q tableless.db "CREATE TABLE a(x); DROP TABLE a;"
refused_by_all 4 tableless.db "'tableless.db' is not a bvtool database"
q foreign.db "PRAGMA journal_mode = WAL; CREATE TABLE people(name); INSERT INTO people VALUES ('ada');" >/dev/null
refused_by_all 4 foreign.db "'foreign.db' is not a bvtool database"
: >empty.db
for c in status report decompose; do
	expect 4 "bvtool $c: 'empty.db' is not a bvtool database (it is empty)" "$bv" $c --db empty.db
done
expect 4 "bvtool plot: 'empty.db' is not a bvtool database (it is empty)" "$bv" plot --db empty.db --out "$t/plot.out"
assert "a refused empty file stays empty" [ ! -s empty.db ]
assert "nothing beside the empty file" alone empty.db
# collect makes a file left by `touch` its database
run "$bv" collect --db empty.db $G --seeds 1 --methods ce
assert "collect into a 0-byte file (status $status)" [ "$status" = 0 ]
assert "... which is now a bvtool database" [ "$(q empty.db "PRAGMA application_id")" = 1651922018 ]

# --- D10: not a regular file; a FIFO must not hang anything
mkfifo fifo.db
for c in status report decompose; do
	expect 3 "bvtool $c: 'fifo.db' is not a regular file" timeout 30 "$bv" $c --db fifo.db
done
expect 3 "bvtool plot: 'fifo.db' is not a regular file" timeout 30 "$bv" plot --db fifo.db --out "$t/plot.out"
expect 3 "bvtool collect: 'fifo.db' is not a regular file" timeout 30 "$bv" collect --db fifo.db $G
assert "the FIFO is still a FIFO" [ -p fifo.db ]
mkdir dir.db
expect 3 "bvtool status: 'dir.db' is not a regular file" "$bv" status --db dir.db
expect 3 "bvtool collect: 'dir.db' is not a regular file" "$bv" collect --db dir.db $G
assert "nothing created in the directory" [ -z "$(ls dir.db)" ]
expect 3 "bvtool status: '/dev/null' is not a regular file" "$bv" status --db /dev/null
expect 3 "bvtool report: '/dev/null' is not a regular file" "$bv" report --db /dev/null

# --- bvtool's application_id over a schema that is not bvtool's
craft noruns.db "DROP VIEW run_accuracy; DROP TABLE runs"
refused_by_all 4 noruns.db "'noruns.db' is a damaged bvtool database: it has no table 'runs'"
craft columns.db "DROP VIEW regularization_samples; DROP VIEW sample_wide; DROP VIEW regularization_counts; DROP TABLE sample_stats; CREATE TABLE sample_stats(temperature, epoch, split)"
refused_by_all 4 columns.db "'columns.db' is a damaged bvtool database: table 'sample_stats' has no column 'sample_idx'"

# --- a trigger bvtool did not create: it could rewrite or delete the rows
# bvtool writes (trusted_schema=OFF stops only its function calls), so the
# file is refused, by readers and writers alike, and left as it was
craft trigger.db "CREATE TRIGGER keep_quiet AFTER INSERT ON sample_stats BEGIN DELETE FROM sample_stats WHERE rowid = NEW.rowid; END"
refused_by_all 4 trigger.db "'trigger.db' is a damaged bvtool database: it has a trigger 'keep_quiet' that bvtool did not create"

# --- a malformed page (the runs table's): exit 4 naming the file
cp good.db bad.db
root=$(q bad.db "SELECT rootpage FROM sqlite_master WHERE name = 'runs'")
page=$(q bad.db "PRAGMA page_size")
printf '\245\245\245\245\245\245\245\245\245\245\245\245' |
	dd of=bad.db bs=1 seek=$(((root - 1) * page)) conv=notrunc 2>/dev/null
s0=$(sum bad.db)
expect 4 "bvtool status: database 'bad.db' is damaged: database disk image is malformed" "$bv" status --db bad.db
expect_sub 4 "database 'bad.db' is damaged: database disk image is malformed" "$bv" collect --db bad.db $G
assert "the malformed file unchanged" [ "$(sum bad.db)" = "$s0" ]

# --- D13: read-only directories and files, as a user root is not
if ! command -v runuser >/dev/null 2>&1; then
	echo "skipped: the read-only directory checks need runuser (util-linux) to run as nobody"
else
	as() { runuser -u nobody -- "$@"; }
	ro=$t/rodir
	mkdir "$ro"
	chmod 0755 "$ro" # root's: nobody cannot create files in it
	expect 3 "bvtool collect: cannot write database '$ro/new.db': directory '$ro' is not writable" as "$bv" collect --db "$ro/new.db" $G
	assert "nothing created in the read-only directory" [ -z "$(ls "$ro")" ]
	# an existing database nobody may write, in a directory nobody may not
	cp good.db "$ro/g.db"
	chmod 0666 "$ro/g.db"
	s0=$(sum "$ro/g.db")
	expect 3 "bvtool collect: cannot write database '$ro/g.db': directory '$ro' is not writable" as "$bv" collect --db "$ro/g.db" $G --seeds 3
	expect 3 "bvtool decompose: cannot write database '$ro/g.db': directory '$ro' is not writable" as "$bv" decompose --db "$ro/g.db"
	# a reader of a WAL database needs its -shm, which it cannot create there
	expect 3 "bvtool status: cannot read database '$ro/g.db': it needs '$ro/g.db-shm' beside it (WAL mode), and directory '$ro' is not writable" as "$bv" status --db "$ro/g.db"
	expect 3 "bvtool report: cannot read database '$ro/g.db': it needs '$ro/g.db-shm' beside it (WAL mode), and directory '$ro' is not writable" as "$bv" report --db "$ro/g.db"
	assert "the database in the read-only directory unchanged" [ "$(sum "$ro/g.db")" = "$s0" ]
	assert "... and alone" alone "$ro/g.db"

	# root's read-only (0644) database in a directory anyone may write: readers work
	w=$t/wdir
	mkdir "$w"
	chmod 1777 "$w"
	cp good.db "$w/g.db"
	chmod 0644 "$w/g.db"
	run as "$bv" status --db "$w/g.db"
	assert "status as nobody on root's 0644 database (status $status: $(cat "$err"))" [ "$status" = 0 ]
	run as "$bv" report --db "$w/g.db"
	assert "report as nobody on root's 0644 database (status $status: $(cat "$err"))" [ "$status" = 0 ]
	expect 3 "bvtool collect: database '$w/g.db' is read-only" as "$bv" collect --db "$w/g.db" $G --seeds 3
	# the -wal and -shm another user's reader left, which this writer cannot open
	# (SQLite gives them the database's mode: made while it was 0644, then opened)
	cp good.db "$w/h.db"
	chmod 0644 "$w/h.db"
	"$bv" report --db "$w/h.db" >/dev/null # root's reader: root's 0644 -wal and -shm stay
	chmod 0666 "$w/h.db"
	s0=$(sum "$w/h.db")
	expect 3 "bvtool decompose: cannot write database '$w/h.db': '$w/h.db-wal' is not writable" as "$bv" decompose --db "$w/h.db"
	assert "the database beside a foreign -shm unchanged" [ "$(sum "$w/h.db")" = "$s0" ]
fi

cd /
rm -rf "$t"
finish
