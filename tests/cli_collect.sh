#!/bin/sh
# `bvtool collect` and `bvtool status` end to end on Fashion-MNIST subsets:
# resume, pairing across methods, --jobs 1 vs 2 byte-identical, a collect killed
# with SIGKILL and with SIGINT, extension with more seeds and temperatures,
# refusal of a mismatched configuration, and every bad input (exact stderr line,
# exit status, database untouched). The SQL recipes run in cli_analysis.sh.
# Needs BVTOOL, TOOL_CKPT, BV_TMP, sqlite3 and Fashion-MNIST from Debian.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_collect.$$
mkdir -p "$t"
cd "$t"
G="--train-subset 2000 --teacher mlp:64 --teacher-epochs 2 --student mlp:16 --epochs 3"

dump() { snapshots_sum "$1"; }
q() { sqlite3 "$1" "$2"; }
sum() { cksum <"$1"; }

# --- a grid, then the same command again
run "$bv" collect --db ref.db $G --seeds 2 --temps 2,4 --jobs 1
assert "collect exits 0 (status $status)" [ "$status" = 0 ]
assert "one line per finished epoch when not a terminal" [ "$(grep -c ': epoch [0-9]*/3 ' "$out")" = 30 ]
assert "last line names the database" grep -q "^collected 10 cells in [0-9]*s: ref.db$" "$out"
assert "10 cells and the teacher are done" [ "$(q ref.db "SELECT count(*) FROM runs WHERE status = 'done'")" = 11 ]
assert "every epoch of every student is recorded" [ "$(q ref.db "SELECT count(*) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method != 'teacher' AND s.split = 'test'")" = 30 ]
assert "teacher logits for both splits" [ "$(q ref.db "SELECT group_concat(split || ':' || n) FROM (SELECT split, n FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method = 'teacher' ORDER BY split)")" = "test:10000,train:2000" ]
assert "snapshots hold n*k float32" [ "$(q ref.db "SELECT count(*) FROM snapshots WHERE length(logits) != n * k * 4")" = 0 ]
assert "a metrics row per epoch" [ "$(q ref.db "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.method != 'teacher'")" = 30 ]
assert "test_acc of a run is its last epoch's" [ "$(q ref.db "SELECT count(*) FROM runs r JOIN metrics m ON m.run_id = r.id AND m.epoch = r.epochs WHERE r.method != 'teacher' AND abs(m.test_acc - r.test_acc) < 1e-12")" = 10 ]
assert "checkpoints beside the database" [ -f ref.db.ckpt/teacher.ckpt ] 
assert "a student's checkpoint is recorded and exists" [ -f "$(q ref.db "SELECT checkpoint FROM runs WHERE method = 'wsl' AND temperature = 4 AND seed = 2")" ]
assert "configuration recorded" [ "$(q ref.db "SELECT value FROM config WHERE key = 'student'")" = mlp:16 ]
assert "schema version 5" [ "$(q ref.db "PRAGMA user_version")" = 5 ]
assert "WAL mode" [ "$(q ref.db "PRAGMA journal_mode")" = wal ]
assert "in-bag counts of seed 1 sum to N" [ "$(q ref.db "SELECT sum(count) FROM inbag WHERE seed = 1")" = 2000 ]
oob=$(q ref.db "SELECT count(*) FROM inbag WHERE seed = 1 AND count = 0")
assert "about 36.8% of samples are out of bag ($oob of 2000)" test "$oob" -gt 680 -a "$oob" -lt 790
before=$(dump ref.db)
run "$bv" collect --db ref.db $G --seeds 2 --temps 2,4
assert "the same collect again does nothing" [ "$(tail -n 1 "$out")" = "all 10 cells are done (ref.db)" ]
assert "... and changes no snapshot" [ "$(dump ref.db)" = "$before" ]

# --- status
run "$bv" status --db ref.db
assert "status exits 0" [ "$status" = 0 ]
assert "status lists a done cell with its accuracy" grep -q -E '^wsl +4 +2  done +3/3 +[0-9.]+%$' "$out"
assert "status summary" grep -q "^11 runs: 11 done, 0 running, 0 interrupted, 0 pending, 0 failed$" "$out"
expect 3 "bvtool status: database '$t/missing.db' does not exist" "$bv" status --db "$t/missing.db"

# --- --jobs defaults to the CPUs the process may use (its affinity here), the bytes the same
cpus=$(/usr/bin/python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
run "$bv" collect --db jd.db $G --seeds 2 --temps 2,4
assert "the default --jobs is the CPUs of the affinity mask ($cpus)" grep -q "^10 of 10 cells to train ($cpus jobs)$" "$out"
assert "... with the bytes of --jobs 1" [ "$(dump jd.db)" = "$before" ]
run taskset -c 0 "$bv" collect --db jt.db $G --seeds 1 --temps 2
assert "under taskset -c 0 the default is one job" grep -q "^3 of 3 cells to train (1 jobs)$" "$out"
run taskset -c 0 "$bv" collect --help
assert "... and --help says so" grep -q "^  --jobs J  .*(default: the CPUs this process may use, here 1)$" "$out"
run "$bv" collect --help
assert "--help shows the default here ($cpus)" grep -q "^  --jobs J  .*(default: the CPUs this process may use, here $cpus)$" "$out"

# --- --jobs 2 gives the same bytes
run "$bv" collect --db j2.db $G --seeds 2 --temps 2,4 --jobs 2
assert "--jobs 2 exits 0" [ "$status" = 0 ]
assert "--jobs 2 snapshots are byte-identical to --jobs 1" [ "$(dump j2.db)" = "$before" ]

# --- plain readers during collect --jobs 2: a `sqlite3` shell without a busy
# timeout never sees "database is locked" (the keeper holds a connection open,
# so no worker's close is the last one, which would checkpoint and delete the
# WAL under an exclusive lock)
R="--train-subset 1000 --teacher mlp:16 --teacher-epochs 1 --student mlp:8 --epochs 2 --temps 2,4"
"$bv" collect --db readers.db $R --seeds 1 >/dev/null
rm -f readers.done
("$bv" collect --db readers.db $R --seeds 8 --jobs 2 >readers.log 2>&1; echo $? >readers.done) &
nq=0
locked=0
while [ ! -s readers.done ] && [ $nq -lt 3000 ]; do
	r=$(sqlite3 readers.db "SELECT count(*) FROM snapshots" 2>&1) || true
	case "$r" in *locked*) locked=$((locked + 1)) ;; esac
	nq=$((nq + 1))
done
wait
assert "the collect beside the readers succeeds" [ "$(cat readers.done)" = 0 ]
assert "plain readers during collect --jobs 2: $locked of $nq queries saw a lock" [ "$locked" = 0 ]
assert "... over enough queries ($nq)" [ "$nq" -ge 100 ]
assert "the database is complete without its -wal" [ "$(sqlite3 "file:readers.db?immutable=1" "SELECT count(*) FROM runs WHERE status = 'done'")" = 41 ]

# --- a worker killed by a signal (--jobs 2): listed on stdout, one stderr line, exit 130
W="--train-subset 3000 --teacher mlp:16 --teacher-epochs 1 --student mlp:64 --epochs 3 --temps 2,4"
"$bv" collect --db wk.db $W --seeds 1 --methods ce >/dev/null
"$bv" collect --db wk.db $W --seeds 2 --jobs 2 >wk.out 2>wk.err &
pid=$!
n=0
# two epochs recorded, and the keeper and both workers there (killing the
# keeper instead, before the workers exist, is not this test)
while { [ "$(q wk.db "SELECT count(*) FROM metrics" 2>/dev/null || echo 0)" -lt 6 ] ||
	[ "$(pgrep -c -P "$pid" || true)" -lt 3 ]; } && [ $n -lt 600 ]; do
	sleep 0.02
	n=$((n + 1))
done
kill -KILL "$(pgrep -n -P "$pid")" # the newest child is a worker (the keeper is the first)
set +e
wait "$pid"
st=$?
set -e
assert "a killed worker: exit 130 (got $st)" [ "$st" = 130 ]
assert "... one line on stderr naming it" sh -c "[ \$(wc -l <wk.err) = 1 ] && grep -q \"^bvtool collect: [a-z]* .*seed [0-9]: worker killed by signal 9; the other cells are recorded in 'wk.db'\$\" wk.err"
assert "... and listed on stdout" grep -q "^failed: .*seed [0-9]: worker killed by signal 9$" wk.out
assert "... the other cells done" grep -q "^done: " wk.out

# --- pairing: with alpha = 0 a kd student is a ce student, bit for bit, if and
# only if both see the same bootstrap draw, initial weights and batch order
run "$bv" collect --db pair.db $G --seeds 2 --methods ce,kd --temps 4 --alpha 0
assert "pairing collect exits 0" [ "$status" = 0 ]
same=$(q pair.db "SELECT count(*) FROM snapshots a JOIN runs ra ON ra.id = a.run_id
                  JOIN snapshots b ON b.epoch = a.epoch AND b.split = a.split
                  JOIN runs rb ON rb.id = b.run_id
                  WHERE ra.method = 'ce' AND rb.method = 'kd' AND ra.seed = rb.seed AND a.logits = b.logits")
assert "kd (alpha 0) equals ce for the same seed at every epoch ($same of 6)" [ "$same" = 6 ]
diff=$(q pair.db "SELECT count(*) FROM snapshots a JOIN runs ra ON ra.id = a.run_id
                  JOIN snapshots b ON b.epoch = a.epoch AND b.split = a.split
                  JOIN runs rb ON rb.id = b.run_id
                  WHERE ra.method = 'ce' AND rb.method = 'ce' AND ra.seed = 1 AND rb.seed = 2 AND a.logits = b.logits")
assert "different seeds give different students" [ "$diff" = 0 ]
assert "different seeds draw different replicas" [ "$(q pair.db "SELECT count(*) FROM inbag a JOIN inbag b USING (sample_idx) WHERE a.seed = 1 AND b.seed = 2 AND a.count != b.count")" -gt 500 ]

# --- extend with a seed and a temperature: only the new cells are trained
run "$bv" collect --db ref.db $G --seeds 3 --temps 2,4,8 --jobs 1
assert "extension trains only the missing cells" grep -q "^11 of 21 cells to train (1 jobs)$" "$out"
assert "extension leaves the earlier cells alone" [ "$(q ref.db "SELECT count(*) FROM runs WHERE status = 'done'")" = 22 ]

# --- a different setting for the same database is refused, the database untouched
s0=$(sum ref.db)
expect 4 "bvtool collect: database 'ref.db' was collected with --student mlp:16, not mlp:32 (use another --db)" "$bv" collect --db ref.db $G --student mlp:32 --seeds 2
expect 4 "bvtool collect: database 'ref.db' was collected with --epochs 3, not 4 (use another --db)" "$bv" collect --db ref.db $G --epochs 4 --seeds 2
expect 4 "bvtool collect: database 'ref.db' was collected with --train-subset 2000, not 3000 (use another --db)" "$bv" collect --db ref.db $G --train-subset 3000
assert "a refused collect leaves the database untouched" [ "$(sum ref.db)" = "$s0" ]

# --- bad flags: nothing created
expect 2 "bvtool collect: --seeds: 0 is out of range (1 to 100000)" "$bv" collect --db new.db --seeds 0
expect 2 "bvtool collect: --temps: expected a list of temperatures such as 1,2,4,8, got ''" "$bv" collect --db new.db --temps ""
expect 2 "bvtool collect: --temps: bad temperature '' in '1,,2' (expected numbers > 0, e.g. 1,2,4,8)" "$bv" collect --db new.db --temps 1,,2
expect 2 "bvtool collect: --temps: bad temperature 'abc' in 'abc' (expected numbers > 0, e.g. 1,2,4,8)" "$bv" collect --db new.db --temps abc
expect 2 "bvtool collect: --temps: bad temperature '0' in '4,0' (expected numbers > 0, e.g. 1,2,4,8)" "$bv" collect --db new.db --temps 4,0
expect 2 "bvtool collect: --methods: unknown method 'distill' (expected ce, kd, wsl or kd-filter)" "$bv" collect --db new.db --methods ce,distill
expect 2 "bvtool collect: --record-epochs: bad epoch list '5,2' (expected all, last, or increasing epochs from 1 to 10, e.g. 1,5,10)" "$bv" collect --db new.db --record-epochs 5,2
expect_sub 2 "bvtool collect: --student: unknown model spec 'mlp:x'" "$bv" collect --db new.db --student mlp:x
assert "no database is created on a usage error" [ ! -e new.db ]

# --- bad databases: a one-line error, the file untouched
expect 3 "bvtool collect: cannot open database '$t/nodir/x.db': directory '$t/nodir' does not exist" "$bv" collect --db "$t/nodir/x.db" $G
cp ref.db ro.db
chmod 0444 ro.db
s0=$(sum ro.db)
expect 3 "bvtool collect: database 'ro.db' is read-only" "$bv" collect --db ro.db $G --seeds 4
assert "read-only database untouched" [ "$(sum ro.db)" = "$s0" ]
echo "not a database, just text" >text.db
s0=$(sum text.db)
expect 4 "bvtool collect: 'text.db' is not a SQLite database" "$bv" collect --db text.db $G
assert "text file untouched" [ "$(sum text.db)" = "$s0" ]
sqlite3 foreign.db "CREATE TABLE people(name TEXT); INSERT INTO people VALUES ('ada');"
s0=$(sum foreign.db)
expect 4 "bvtool collect: 'foreign.db' is not a bvtool database" "$bv" collect --db foreign.db $G
assert "foreign database untouched" [ "$(sum foreign.db)" = "$s0" ]
expect 4 "bvtool status: 'foreign.db' is not a bvtool database" "$bv" status --db foreign.db

# --- exact settings (D5, D6): numbers that print alike under %g are different settings
S="--train-subset 500 --teacher mlp:8 --teacher-epochs 1 --student mlp:8 --epochs 1 --seeds 1"
run "$bv" collect --db temps.db $S --methods kd --temps 1.0000001,1.0000002
assert "two temperatures alike under %g are two cells (status $status)" [ "$(q temps.db "SELECT count(*) FROM runs WHERE method = 'kd' AND status = 'done'")" = 2 ]
assert "... with a checkpoint file each" [ "$(q temps.db "SELECT count(DISTINCT checkpoint) FROM runs WHERE method = 'kd'")" = 2 ]
for c in $(q temps.db "SELECT checkpoint FROM runs WHERE method = 'kd'"); do
	assert "checkpoint '$c' exists" [ -f "$c" ]
done
assert "the checkpoint directory holds both students and the teacher" [ "$(ls temps.db.ckpt | wc -l)" = 3 ]
run "$bv" status --db temps.db
assert "status tells the two temperatures apart" grep -q -E '^kd +1.0000002 +1  done ' "$out"
: >temps.db.ckpt/run-2-kd-T1.0000002-s1.ckpt.tmp4242 # as a kill -9 mid-write leaves it
: >temps.db.ckpt/notes.ckpt.tmpx
run "$bv" collect --db temps.db $S --methods kd --temps 1.0000001,1.0000002
assert "the same collect again finds both done" [ "$(tail -n 1 "$out")" = "all 2 cells are done (temps.db)" ]
assert "... and drops a checkpoint's temporary file left by a killed collect" [ ! -e temps.db.ckpt/run-2-kd-T1.0000002-s1.ckpt.tmp4242 ]
assert "... but nothing else" [ -e temps.db.ckpt/notes.ckpt.tmpx ]
rm temps.db.ckpt/notes.ckpt.tmpx
run "$bv" collect --db temps.db $S --methods kd --temps 1 --jobs 1
assert "--temps 1 is not 1.0000001: a new cell" grep -q "^1 of 1 cells to train (1 jobs)$" "$out"
assert "... beside the other two" [ "$(q temps.db "SELECT count(*) FROM runs WHERE method = 'kd' AND status = 'done'")" = 3 ]
N="--lr 0.01234561 --alpha 2.2500001 --gamma 1.0000001 --wd 0.00050000001 --momentum 0.90000001 --teacher-lr 0.050000001"
run "$bv" collect --db exact.db $S --methods ce $N
assert "a collect with 8-digit settings (status $status)" [ "$status" = 0 ]
assert "settings stored so that they read back exactly" [ "$(q exact.db "SELECT value FROM config WHERE key = 'lr'")" = 0.01234561 ]
s0=$(sum exact.db)
for f in "--lr 0.01234564" "--alpha 2.2500002" "--gamma 1.0000002" "--wd 0.00050000002" "--momentum 0.90000002" "--teacher-lr 0.050000002"; do
	set -- $f
	key=$(echo "${1#--}" | tr - _)
	have=$(q exact.db "SELECT value FROM config WHERE key = '$key'")
	expect 4 "bvtool collect: database 'exact.db' was collected with $1 $have, not $2 (use another --db)" "$bv" collect --db exact.db $S --methods ce $N --seeds 2 "$1" "$2"
done
assert "a refused collect leaves the database untouched" [ "$(sum exact.db)" = "$s0" ]
# a database from a bvtool that stored 6 digits (%g) is compared at those digits
cp exact.db old.db
sqlite3 old.db "UPDATE config SET value = '0.0123456' WHERE key = 'lr'; DELETE FROM config WHERE key = 'numbers'"
s0=$(sum old.db)
expect 4 "bvtool collect: database 'old.db' was collected with --lr 0.0123456 (6 digits), not 0.0123457 (use another --db)" "$bv" collect --db old.db $S --methods ce $N --lr 0.01234567
assert "... and left untouched" [ "$(sum old.db)" = "$s0" ]
run "$bv" collect --db old.db $S --methods ce $N --lr 0.01234559 --seeds 2
assert "an older database accepts a setting equal at the 6 digits it stored (status $status)" [ "$status" = 0 ]
assert "... and keeps what it stored" [ "$(q old.db "SELECT value FROM config WHERE key = 'lr'")" = 0.0123456 ]

# --- a FIFO (or device) as --db: refused at once, nothing read from it (D10)
mkfifo fifo.db
expect 3 "bvtool status: 'fifo.db' is not a regular file" timeout 10 "$bv" status --db fifo.db
expect 3 "bvtool collect: 'fifo.db' is not a regular file" timeout 10 "$bv" collect --db fifo.db $S
assert "no checkpoint directory for a refused FIFO" [ ! -e fifo.db.ckpt ]
expect 3 "bvtool status: '/dev/null' is not a regular file" timeout 10 "$bv" status --db /dev/null
rm fifo.db

# --- a given teacher checkpoint
"$bv" train --model mlp:64 --train-subset 2000 --epochs 2 --out given.ckpt >/dev/null
run "$bv" collect --db given.db $G --teacher-ckpt given.ckpt --seeds 1 --methods ce,wsl --temps 4 --record-train --record-epochs 1,3
assert "--teacher-ckpt is used (status $status)" grep -q "^teacher: mlp:64 from given.ckpt$" "$out"
assert "--record-train records the training split at the listed epochs" [ "$(q given.db "SELECT group_concat(epoch || ':' || n) FROM (SELECT s.epoch, s.n FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method = 'wsl' AND s.split = 'train' ORDER BY s.epoch)")" = "1:2000,3:2000" ]
assert "metrics for every epoch, recorded or not" [ "$(q given.db "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.method = 'wsl'")" = 3 ]

# --- a diverging cell: exit 5, the cell marked failed, the others recorded
run "$bv" collect --db div.db $G --seeds 1 --methods ce --lr 90 --momentum 0.99
assert "a diverged cell exits 5 (got $status)" [ "$status" = 5 ]
assert "the divergence is named" grep -q "^bvtool collect: ce seed 1: training diverged at epoch 1 step" "$err"
assert "the cell is marked failed" [ "$(q div.db "SELECT status FROM runs WHERE method = 'ce'")" = failed ]
expect 4 "bvtool collect: --teacher-ckpt 'given.ckpt' holds a mlp:64, not --teacher mlp:128" "$bv" collect --db given2.db $G --teacher mlp:128 --teacher-ckpt given.ckpt --seeds 1

# --- killed with SIGKILL mid-run: no partial snapshot; the next collect finishes the
# job and ends with exactly the bytes of an uninterrupted collect
K="--train-subset 20000 --teacher mlp:64 --teacher-epochs 1 --student mlp:256 --epochs 4 --seeds 2 --temps 4"
"$bv" collect --db kref.db $K >/dev/null
setsid "$bv" collect --db kill.db $K --jobs 2 >kill.log 2>&1 &
pid=$!
n=0
while [ "$(q kill.db "SELECT count(*) FROM metrics" 2>/dev/null || echo 0)" -lt 5 ] && [ $n -lt 600 ]; do
	sleep 0.05
	n=$((n + 1))
done
kill -KILL -"$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
# the workers die a moment after the parent: wait until none holds the database
flock -w 10 kill.db true
done_before=$(q kill.db "SELECT count(*) FROM runs WHERE status = 'done' AND method != 'teacher'")
assert "the kill came mid-collect ($done_before of 6 cells done)" [ "$done_before" -lt 6 ]
assert "no partial snapshot after SIGKILL" [ "$(q kill.db "SELECT count(*) FROM snapshots WHERE length(logits) != n * k * 4")" = 0 ]
assert "every snapshot has its metrics row" [ "$(q kill.db "SELECT count(*) FROM snapshots s LEFT JOIN metrics m USING (run_id, epoch) WHERE m.run_id IS NULL")" = 0 ]
run "$bv" status --db kill.db
assert "status shows the killed cells as interrupted" grep -q " interrupted " "$out"
run "$bv" collect --db kill.db $K --jobs 2
assert "the next collect resumes (status $status)" [ "$status" = 0 ]
assert "... and mentions the interrupted cells" grep -q "interrupted cells are redone from scratch" "$out"
assert "resumed collect equals an uninterrupted one, byte for byte" [ "$(dump kill.db)" = "$(dump kref.db)" ]

# --- SIGINT (Ctrl-C): exit 130 with a message, and resumable
setsid "$bv" collect --db int.db $K >int.log 2>int.err &
pid=$!
n=0
while [ "$(q int.db "SELECT count(*) FROM metrics" 2>/dev/null || echo 0)" -lt 4 ] && [ $n -lt 600 ]; do
	sleep 0.05
	n=$((n + 1))
done
kill -INT -"$pid" 2>/dev/null || true
set +e
wait "$pid"
st=$?
set -e
assert "Ctrl-C exits 130 (got $st)" [ "$st" = 130 ]
assert "Ctrl-C says how to resume" grep -q "^bvtool collect: interrupted: .*run the same command again to resume$" int.err
"$bv" collect --db int.db $K >/dev/null
assert "interrupted collect completes on the next run" [ "$(dump int.db)" = "$(dump kref.db)" ]

cd /
rm -rf "$t"
finish
