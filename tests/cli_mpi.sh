#!/bin/sh
# `mpirun -n 3 bvtool collect --mpi` on real Open MPI (3 ranks on the 2 cores:
# --oversubscribe, and --allow-run-as-root for root): the merged database holds
# the snapshots of a one-machine collect byte for byte, each rank's shard only
# the cells it ran; a rank killed with SIGKILL mid-run, then the same command
# again, gives the same bytes; a rerun when all is done trains nothing; shard
# directories on each rank's own storage, merged the same; a
# singleton world (no mpirun) works; SIGTERM to the ranks and SIGINT to a
# singleton stop them cleanly, and the same command again finishes; an error on
# the ranks ends them all, each with the same message. Exits 77 (skipped) when
# bvtool was built without Open MPI (BV_MPI_BUILT, from CMake, is not ON) or
# mpirun is missing. Needs BVTOOL, BV_TMP, sqlite3, mpirun (openmpi-bin) and
# Fashion-MNIST. About 30 s.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_mpi.$$
mkdir -p "$t"
cd "$t"

if [ "${BV_MPI_BUILT:-OFF}" != ON ] || ! command -v mpirun >/dev/null; then
	echo "cli_mpi: bvtool was built without Open MPI, or mpirun is missing: skipped"
	exit 77
fi
mpi() { timeout 120 mpirun --oversubscribe --allow-run-as-root "$@"; }
q() { sqlite3 "$1" "$2"; }
done_cells() { q "$1" "SELECT count(*) FROM runs WHERE status = 'done' AND method != 'teacher'" 2>/dev/null || echo 0; }
G="--train-subset 2000 --teacher mlp:64 --teacher-epochs 2 --student mlp:16 --epochs 3 --seeds 2 --temps 2,4"

# --- three ranks against --jobs 1
"$bv" collect --jobs 1 --db ref.db $G >/dev/null
ref=$(snapshots_sum ref.db)
run mpi -n 3 "$bv" collect --mpi --shard-dir S --db m.db $G
assert "mpirun -n 3 collect --mpi exits 0 (status $status: $(tail -n 2 "$err"))" [ "$status" = 0 ]
assert "rank 0 names the database last" grep -q "^collected the grid in [0-9]*s: m.db$" "$out"
assert "the merged snapshots equal collect --jobs 1's byte for byte" [ "$(snapshots_sum m.db)" = "$ref" ]
assert "10 cells and the teacher done in m.db" [ "$(q m.db "SELECT count(*) FROM runs WHERE status = 'done'")" = 11 ]
total=0
for r in 0 1 2; do
	n=$(done_cells S/shard-$r.db)
	assert "shard $r holds only some of the cells ($n of 10 done)" [ "$n" -lt 10 ]
	assert "... and the whole plan: 10 cells and the teacher" [ "$(q S/shard-$r.db "SELECT count(*) FROM runs")" = 11 ]
	total=$((total + n))
done
assert "the shards hold every cell once ($total done)" [ "$total" = 10 ]
assert "rank 1 and 2 got the teacher's bytes beside their shards" [ -s S/shard-1.teacher.ckpt -a -s S/shard-2.teacher.ckpt ]
assert "... the same as rank 0's" cmp -s S/shard-1.teacher.ckpt S/shard-0.db.ckpt/teacher.ckpt

# --- the same command when every cell is done: no training, the same bytes
before=$(for r in 0 1 2; do snapshots_sum S/shard-$r.db; done)
run mpi -n 3 "$bv" collect --mpi --shard-dir S --db m.db $G
assert "the rerun exits 0 (status $status)" [ "$status" = 0 ]
assert "... trains nothing" sh -c "! grep -q 'epoch' '$out'"
assert "... leaves the shards as they were" [ "$(for r in 0 1 2; do snapshots_sum S/shard-$r.db; done)" = "$before" ]
assert "... and m.db's snapshots too" [ "$(snapshots_sum m.db)" = "$ref" ]

# --- node-local shard directories: each rank in a directory of its own (as if on its
# own node), so rank 0 reads no other rank's shard: those come to it over MPI
mkdir -p node0 node1 node2
run mpi -n 3 sh -c 'cd node$OMPI_COMM_WORLD_RANK && exec "$0" "$@"' \
	"$bv" collect --mpi --shard-dir S --db ../local.db $G
assert "node-local --shard-dir: exit 0 (status $status: $(tail -n 2 "$err"))" [ "$status" = 0 ]
assert "... the same snapshots" [ "$(snapshots_sum local.db)" = "$ref" ]
assert "... rank 0's node holds its shard only" [ "$(ls node0/S)" = "$(printf 'shard-0.db\nshard-0.db.ckpt')" ]
missing=0
for c in $(q local.db "SELECT checkpoint FROM runs WHERE status = 'done'"); do
	[ -f "$c" ] || missing=$((missing + 1))
done
assert "... and every run's checkpoint is beside local.db ($missing missing)" [ "$missing" = 0 ]

# --- a singleton world: bvtool collect --mpi without mpirun
run timeout 120 "$bv" collect --mpi --shard-dir S1 --db one.db $G
assert "collect --mpi without mpirun exits 0 (status $status: $(tail -n 1 "$err"))" [ "$status" = 0 ]
assert "... the same snapshots" [ "$(snapshots_sum one.db)" = "$ref" ]
assert "... all in its one shard" [ "$(done_cells S1/shard-0.db)" = 10 ]

# --- an error on every rank ends the job: one message, no rank left waiting
: >notadir
run mpi -n 3 "$bv" collect --mpi --shard-dir notadir/S --db e.db $G
assert "a shard directory that cannot be made: exit 3 (status $status)" [ "$status" = 3 ]
assert "... the error said" grep -q "^bvtool collect: --shard-dir: cannot create 'notadir/S': Not a directory$" "$err"
assert "... and no database made" [ ! -e e.db ]

# --- a rank killed with SIGKILL mid-run; the same mpirun again finishes: same bytes
K="--train-subset 3000 --teacher mlp:32 --teacher-epochs 1 --student mlp:32 --epochs 4 --seeds 4 --temps 2,4"
"$bv" collect --jobs 2 --db kref.db $K >/dev/null # --jobs 2 writes what --jobs 1 does (cli_collect.sh)
mpirun --oversubscribe --allow-run-as-root -n 3 "$bv" collect --mpi --shard-dir KS --db k.db $K \
	>kill.out 2>kill.err &
mp=$!
n=0
while [ "$(done_cells KS/shard-1.db)" -lt 1 ] && [ $n -lt 600 ]; do
	sleep 0.1
	n=$((n + 1))
done
victim=
for p in $(pgrep -P $mp); do
	if tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then victim=$p; fi
done
assert "rank 1's process found among mpirun's children" [ -n "$victim" ]
kill -KILL $victim 2>/dev/null || true
st=0
wait $mp || st=$?
killed_at=$(($(done_cells KS/shard-0.db) + $(done_cells KS/shard-1.db) + $(done_cells KS/shard-2.db)))
assert "mpirun fails when a rank is killed (status $st)" [ "$st" != 0 ]
assert "the kill came mid-run ($killed_at of 20 cells done)" [ "$killed_at" -lt 20 ]
assert "... and left no merged database" [ ! -e k.db ]
run mpi -n 3 "$bv" collect --mpi --shard-dir KS --db k.db $K
assert "the same mpirun again exits 0 (status $status: $(tail -n 2 "$err"))" [ "$status" = 0 ]
assert "... trains only what was not done" [ "$(grep -c '^done: ' "$out")" = $((20 - killed_at)) ]
assert "... and the merged snapshots equal a one-machine collect's" [ "$(snapshots_sum k.db)" = "$(snapshots_sum kref.db)" ]

# --- SIGTERM to every rank (what Slurm's scancel sends; a Ctrl-C to mpirun instead
# ends the job Open MPI's way, SIGKILL a second after SIGTERM): each stops its cell
# after the epoch it is in, exit 130, and the same command again finishes
mpirun --oversubscribe --allow-run-as-root -n 3 "$bv" collect --mpi --shard-dir TS --db term.db $K \
	>term.out 2>term.err &
mp=$!
n=0
while [ "$(grep -c '^done: ' term.out 2>/dev/null || true)" -lt 3 ] && [ $n -lt 600 ]; do
	sleep 0.1
	n=$((n + 1))
done
kill -TERM $(pgrep -P $mp) 2>/dev/null || true
st=0
wait $mp || st=$?
assert "SIGTERM to the ranks: exit 130 (status $st)" [ "$st" = 130 ]
assert "... every rank says it was interrupted" [ "$(grep -cE "^bvtool collect: (rank [12]: )?interrupted: [0-9]* of 20 cells done; run the same command again to resume$" term.err)" = 3 ]
assert "... no merge" [ ! -e term.db ]
run mpi -n 3 "$bv" collect --mpi --shard-dir TS --db term.db $K
assert "the same mpirun again exits 0 (status $status)" [ "$status" = 0 ]
assert "... with the same bytes" [ "$(snapshots_sum term.db)" = "$(snapshots_sum kref.db)" ]

# --- SIGINT to a singleton: the running cell stops after its epoch, exit 130; rerun finishes
"$bv" collect --mpi --shard-dir IS --db i.db $K >int.out 2>int.err &
pid=$!
n=0
while [ "$(grep -c ': epoch ' int.out 2>/dev/null || true)" -lt 6 ] && [ $n -lt 600 ]; do
	sleep 0.1
	n=$((n + 1))
done
kill -INT $pid
st=0
wait $pid || st=$?
assert "SIGINT: exit 130 (status $st)" [ "$st" = 130 ]
assert "... one line: interrupted" grep -q "^bvtool collect: interrupted: [0-9]* of 20 cells done; run the same command again to resume$" int.err
assert "... the cells not done left pending or running (stopped), none failed" [ "$(q IS/shard-0.db "SELECT count(*) FROM runs WHERE status = 'failed'")" = 0 ]
assert "... and some not done" [ "$(done_cells IS/shard-0.db)" -lt 20 ]
assert "... no merge" [ ! -e i.db ]
run timeout 120 "$bv" collect --mpi --shard-dir IS --db i.db $K
assert "the rerun finishes (status $status)" [ "$status" = 0 ]
assert "... with the same bytes" [ "$(snapshots_sum i.db)" = "$(snapshots_sum kref.db)" ]

cd /
rm -rf "$t"
finish
