#!/bin/sh
# Shards and merge (issue 14): collect --teacher-only, collect --shard I/N and
# auto, bvtool merge in two orders and after a shard killed with SIGKILL, more
# shards than SQLite's attach limit, --journal, and every refusal with the
# target untouched. Every merged database must hold the snapshots of a
# one-machine collect of the same grid, byte for byte (snapshots_sum).
# Needs BVTOOL, BV_TMP, sqlite3 and Fashion-MNIST from Debian.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_merge.$$
mkdir -p "$t"
cd "$t"
G="--train-subset 2000 --teacher mlp:64 --teacher-epochs 2 --student mlp:16 --epochs 3 --seeds 2 --temps 2,4"
q() { sqlite3 "$1" "$2"; }
# everything a database holds, to show a refused merge left it as it was
whole() { sqlite3 "$1" .dump | cksum; }
TC=plan.db.ckpt/teacher.ckpt

run "$bv" collect --db ref.db $G
assert "the one-machine collect (status $status)" [ "$status" = 0 ]
ref=$(snapshots_sum ref.db)

# --- the teacher once, then three shards
run "$bv" collect --teacher-only --db plan.db $G
assert "--teacher-only exits 0 (status $status)" [ "$status" = 0 ]
assert "--teacher-only says where the teacher is" grep -q "^teacher ready in 'plan.db': shards take --teacher-ckpt ./plan.db.ckpt/teacher.ckpt$" "$out"
assert "--teacher-only trains no student" [ "$(q plan.db "SELECT count(*) FROM runs WHERE method != 'teacher'")" = 0 ]
assert "--teacher-only writes the plan: in-bag counts of both seeds" [ "$(q plan.db "SELECT count(DISTINCT seed) FROM inbag")" = 2 ]
for i in 0 1 2; do
	run "$bv" collect --shard $i/3 --teacher-ckpt $TC --db s$i.db $G --jobs 1
	assert "shard $i/3 exits 0 (status $status)" [ "$status" = 0 ]
	assert "shard $i/3 says what it trains" grep -q "^[34] of [34] cells of shard $i/3 to train (1 jobs)$" "$out"
done
assert "the shards split the 10 cells 4, 3, 3" [ "$(for i in 0 1 2; do q s$i.db "SELECT count(*) FROM runs WHERE method != 'teacher'"; done | tr '\n' ,)" = "4,3,3," ]
assert "round robin in grid order: shard 1 holds seed 1's kd T=2... and seed 2's ce" [ "$(q s1.db "SELECT group_concat(method || IFNULL(temperature, '') || ':' || seed, ' ') FROM (SELECT * FROM runs WHERE method != 'teacher' ORDER BY id)")" = "kd2.0:1 wsl4.0:1 kd4.0:2" ]
assert "a shard carries the whole plan: both seeds' in-bag counts" [ "$(q s1.db "SELECT count(DISTINCT seed) FROM inbag")" = 2 ]
assert "a shard says which it is" [ "$(q s2.db "SELECT value FROM config WHERE key = 'shard'")" = 2/3 ]

run "$bv" merge --db m1.db s0.db s1.db s2.db
assert "merge exits 0 (status $status)" [ "$status" = 0 ]
assert "merge prints a line per shard" [ "$(grep -c "^merged 's[012].db': " "$out")" = 3 ]
assert "merge sums up" grep -q "^merge: 3 shards into 'm1.db': 10 cells added, 0 already there (" "$out"
assert "merged in order 0 1 2 = one machine, byte for byte" [ "$(snapshots_sum m1.db)" = "$ref" ]
cp plan.db m2.db
run "$bv" merge --db m2.db s2.db s0.db s1.db
assert "merged in order 2 0 1 into the teacher's database = one machine" [ "$(snapshots_sum m2.db)" = "$ref" ]
assert "the teacher once" [ "$(q m2.db "SELECT count(*) FROM runs WHERE method = 'teacher'")" = 1 ]
run "$bv" status --db m2.db
assert "every cell done, as bvtool status says" grep -q "^11 runs: 11 done" "$out"
assert "metrics copied: a row per epoch" [ "$(q m2.db "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.method != 'teacher'")" = 30 ]
assert "the settings are the shards' but the shard" [ "$(q m2.db "SELECT count(*) FROM config WHERE key = 'shard'")" = 0 ]
ck=$(q m2.db "SELECT checkpoint FROM runs WHERE method = 'wsl' AND temperature = 4 AND seed = 2")
assert "checkpoints copied beside the target, named by the new run id" [ -f "$ck" ]
case $ck in m2.db.ckpt/run-*-wsl-T4-s2.ckpt) ok ;; *) bad "checkpoint path '$ck'" ;; esac
run "$bv" decompose --db m2.db --temp 4
assert "the merged database decomposes (status $status)" [ "$status" = 0 ]

# --- the same merge again: nothing to add; a merge resumes by skipping what it holds
before=$(whole m1.db)
run "$bv" merge --db m1.db s0.db s1.db s2.db
assert "merging again adds nothing" grep -q "^merge: 3 shards into 'm1.db': 0 cells added, 10 already there" "$out"
assert "... and changes no snapshot" [ "$(snapshots_sum m1.db)" = "$ref" ]
run "$bv" merge --db part.db s0.db
assert "one shard of three merges, with a note of the missing ones" grep -q "^note: shards 1, 2 of 3 are not among those merged; merge them too when they are done$" "$out"
run "$bv" merge --db part.db s0.db s1.db s2.db
assert "the rest merged later: the same as one machine" [ "$(snapshots_sum part.db)" = "$ref" ]

# --- a shard killed with SIGKILL mid-run, run again, merged
setsid "$bv" collect --shard 1/3 --teacher-ckpt $TC --db k1.db $G >k1.log 2>&1 &
pid=$!
i=0
while [ "$(q k1.db "SELECT count(*) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method != 'teacher'" 2>/dev/null || echo 0)" -lt 2 ] && [ $i -lt 600 ]; do
	sleep 0.05
	i=$((i + 1))
done
kill -KILL -"$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
# its worker dies a moment after it: wait until none holds the database
flock -w 10 k1.db true
assert "the killed shard left a cell unfinished" [ "$(q k1.db "SELECT count(*) FROM runs WHERE method != 'teacher' AND status != 'done'")" -gt 0 ]
run "$bv" collect --shard 1/3 --teacher-ckpt $TC --db k1.db $G
assert "the killed shard's rerun exits 0 (status $status)" [ "$status" = 0 ]
run "$bv" merge --db k.db s0.db k1.db s2.db
assert "merged with the rerun shard = one machine" [ "$(snapshots_sum k.db)" = "$ref" ]

# --- a shard not done merges its done cells, and lists the rest as pending
cp k1.db nd.db
q nd.db "UPDATE runs SET status = 'failed' WHERE method = 'wsl'"
run "$bv" merge --db nd.db.merged s0.db nd.db
assert "a cell not done is not copied, and said so" grep -q "^note: 1 cell of 'nd.db' is not done; collect that shard again, then merge again$" "$out"
assert "... but recorded as pending in the target" [ "$(q nd.db.merged "SELECT status FROM runs WHERE method = 'wsl' AND temperature = 4 AND seed = 1")" = pending ]

# --- a shard's checkpoint path is its own directory's, or none
cp s0.db evil.db
mkdir -p evil.db.ckpt
echo secret >secret.txt
q evil.db "UPDATE runs SET checkpoint = '../secret.txt' WHERE method = 'ce'"
run "$bv" merge --db ev.db evil.db
assert "a checkpoint path outside the shard's directory is not followed" grep -q "^note: 'evil.db' names a checkpoint outside 'evil.db.ckpt/' for run [0-9]*; it is recorded without one$" "$out"
assert "... and nothing of it is copied" [ -z "$(grep -rl secret ev.db.ckpt 2>/dev/null)" ]
assert "... the run is recorded without a checkpoint" [ "$(q ev.db "SELECT count(*) FROM runs WHERE method = 'ce' AND checkpoint IS NULL")" = 1 ]

# --- more shards than SQLite attaches at once (10): twelve, two of them empty
for i in $(seq 0 11); do
	"$bv" collect --shard $i/12 --teacher-ckpt $TC --db w$i.db $G >/dev/null 2>&1 || bad "shard $i/12"
done
assert "a shard of no cell holds only the teacher" [ "$(q w11.db "SELECT count(*) FROM runs")" = 1 ]
run "$bv" merge --db w.db w0.db w1.db w2.db w3.db w4.db w5.db w6.db w7.db w8.db w9.db w10.db w11.db
assert "twelve shards merge (status $status)" [ "$status" = 0 ]
assert "twelve shards = one machine" [ "$(snapshots_sum w.db)" = "$ref" ]

# --- a target of an older schema (3: before the dynamics table and the inits) is
# upgraded, then merged
cp s0.db old.db
q old.db "DROP VIEW run_accuracy; DROP INDEX runs_cell; ALTER TABLE runs DROP COLUMN init;
CREATE UNIQUE INDEX runs_cell ON runs(method, IFNULL(temperature, -1), seed);
ALTER TABLE sample_stats DROP COLUMN var_init; ALTER TABLE sample_stats DROP COLUMN var_data;
CREATE VIEW run_accuracy AS SELECT r.id AS run_id, r.method, r.temperature, r.seed, r.status,
 r.test_acc AS final_acc, NULL AS best_acc, NULL AS best_epoch FROM runs r;
DROP VIEW dynamics_by_method; DROP TABLE dynamics; PRAGMA user_version = 3"
run "$bv" merge --db old.db s1.db s2.db
assert "merge into a schema-3 target (status $status: $(cat "$err"))" [ "$status" = 0 ]
assert "... upgrades it to 5" [ "$(q old.db "PRAGMA user_version")" = 5 ]
assert "... and merges: the same as one machine" [ "$(snapshots_sum old.db)" = "$ref" ]

# --- refusals, each with the target untouched
before=$(whole m1.db)
"$bv" collect --shard 0/3 --teacher-ckpt $TC --db lr.db $G --lr 0.02 --epochs 3 >/dev/null 2>&1
expect 4 "bvtool merge: 'lr.db' was collected with --lr 0.02, not 0.01 as 'm1.db'" "$bv" merge --db m1.db lr.db
cp s1.db bad.db
q bad.db "UPDATE snapshots SET logits = zeroblob(length(logits)) WHERE rowid = (SELECT min(s.rowid) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method = 'kd')"
expect 4 "bvtool merge: 'm1.db' and 'bad.db' both hold kd T=2 seed 1, with different snapshots" "$bv" merge --db m1.db bad.db
expect 4 "bvtool merge: 's1.db' and 'bad.db' both hold kd T=2 seed 1, with different snapshots" "$bv" merge --db new.db s1.db bad.db
assert "a refused merge creates no target" [ ! -e new.db ]
cp s1.db ib.db
q ib.db "UPDATE inbag SET count = count + 1 WHERE seed = 2 AND sample_idx = 7"
expect 4 "bvtool merge: 'ib.db' has other in-bag counts for seed 2 than 'm1.db'" "$bv" merge --db m1.db ib.db
expect 4 "bvtool merge: 'ib.db' has other in-bag counts for seed 2 than 's0.db'" "$bv" merge --db new.db s0.db ib.db
cp s1.db lab.db
q lab.db "UPDATE samples SET label = (label + 1) % 10 WHERE split = 'test' AND sample_idx = 3"
expect 4 "bvtool merge: 'lab.db' has other test labels than 's0.db'" "$bv" merge --db new.db s0.db lab.db
assert "a refused merge creates no target" [ ! -e new.db ]
echo "not a database" >text.db
expect 4 "bvtool merge: 'text.db' is not a SQLite database" "$bv" merge --db m1.db s0.db text.db
sqlite3 other.db "CREATE TABLE t(x)"
expect 4 "bvtool merge: 'other.db' is not a bvtool database" "$bv" merge --db m1.db other.db
cp s0.db newer.db
q newer.db "PRAGMA user_version = 99"
expect_sub 4 "bvtool merge: 'newer.db' has schema version 99" "$bv" merge --db m1.db newer.db
expect 3 "bvtool merge: database 'none.db' does not exist" "$bv" merge --db m1.db none.db
expect 2 "bvtool merge: cannot merge 'm1.db' into itself" "$bv" merge --db m1.db s0.db m1.db
expect 2 "bvtool merge: 's0.db' is given twice (as 's0.db')" "$bv" merge --db m1.db s0.db s0.db
expect 2 "bvtool merge: which shards? (one or more databases of collect --shard or --mpi)" "$bv" merge --db m1.db
expect 2 "bvtool merge: --journal: expected auto, wal or delete, got 'off'" "$bv" merge --db m1.db --journal off s0.db
assert "every refusal left the target as it was" [ "$(whole m1.db)" = "$before" ]

# --- --shard and --teacher-only misuse
expect 2 "bvtool collect: --shard: expected I/N (0 <= I < N) or auto, got '3/3'" "$bv" collect --db x.db $G --shard 3/3
expect 2 "bvtool collect: --shard: expected I/N (0 <= I < N) or auto, got '1/0'" "$bv" collect --db x.db $G --shard 1/0
expect 2 "bvtool collect: --shard: expected I/N (0 <= I < N) or auto, got 'a/b'" "$bv" collect --db x.db $G --shard a/b
expect 2 "bvtool collect: --shard: a --teacher-only collect runs no cell; drop one of them" "$bv" collect --db x.db $G --shard 0/2 --teacher-only
expect 2 "bvtool collect: --mpi: the ranks share the grid out themselves; drop --shard" "$bv" collect --db x.db $G --shard 0/2 --mpi
expect 4 "bvtool collect: database 's0.db' holds shard 0/3, not 1/3 (use another --db)" "$bv" collect --db s0.db $G --shard 1/3 --teacher-ckpt $TC
assert "no database made by a misuse" [ ! -e x.db ]

# --- --shard auto: a Slurm array (its ids from SLURM_ARRAY_TASK_MIN), an MPI rank
run env SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_COUNT=3 "$bv" collect --shard auto --teacher-ckpt $TC --db a1.db $G
assert "--shard auto from a Slurm array (status $status)" [ "$status" = 0 ]
assert "... says which variables it used" grep -q "^shard 1/3 (--shard auto: SLURM_ARRAY_TASK_ID=5, SLURM_ARRAY_TASK_MIN=4, SLURM_ARRAY_TASK_COUNT=3)$" "$out"
assert "... and runs shard 1/3's cells" [ "$(snapshots_sum a1.db)" = "$(snapshots_sum s1.db)" ]
run env OMPI_COMM_WORLD_RANK=2 OMPI_COMM_WORLD_SIZE=3 "$bv" collect --shard auto --teacher-ckpt $TC --db a2.db $G
assert "--shard auto from Open MPI's rank" grep -q "^shard 2/3 (--shard auto: OMPI_COMM_WORLD_RANK=2, OMPI_COMM_WORLD_SIZE=3)$" "$out"
expect 2 "bvtool collect: --shard auto: neither SLURM_ARRAY_TASK_ID nor an MPI rank variable (OMPI_COMM_WORLD_RANK, PMI_RANK) is set; give --shard I/N" \
	env -u SLURM_ARRAY_TASK_ID -u OMPI_COMM_WORLD_RANK -u OMPI_COMM_WORLD_SIZE -u PMI_SIZE -u SLURM_NTASKS "$bv" collect --db x.db $G --shard auto
expect 2 "bvtool collect: --shard auto: SLURM_ARRAY_TASK_ID 7 - SLURM_ARRAY_TASK_MIN 0 is not below SLURM_ARRAY_TASK_COUNT 4 (an --array with a step or gaps: use --array=0-3, or --shard I/N)" \
	env SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_COUNT=4 "$bv" collect --db x.db $G --shard auto
expect 2 "bvtool collect: --shard auto: SLURM_ARRAY_TASK_COUNT is 'x', not a number in [1, 1000000]" \
	env SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=x "$bv" collect --db x.db $G --shard auto

# --- the journal: WAL on a local disk, the rollback journal when asked
assert "a shard on a local disk is in WAL mode" [ "$(q s0.db "PRAGMA journal_mode")" = wal ]
run "$bv" collect --shard 0/3 --teacher-ckpt $TC --db d0.db $G --journal delete
assert "--journal delete (status $status)" [ "$status" = 0 ]
assert "--journal delete: the rollback journal" [ "$(q d0.db "PRAGMA journal_mode")" = delete ]
assert "--journal delete: no -wal beside it" [ ! -e d0.db-wal ]
run "$bv" merge --db d.db --journal delete d0.db s1.db s2.db
assert "merge --journal delete = one machine" [ "$(snapshots_sum d.db)" = "$ref" ]
assert "merge --journal delete: the rollback journal" [ "$(q d.db "PRAGMA journal_mode")" = delete ]
expect 2 "bvtool collect: --journal: expected auto, wal or delete, got 'WAL2'" "$bv" collect --db x.db $G --journal WAL2

cd /
rm -rf "$t"
finish
