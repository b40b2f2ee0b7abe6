#!/bin/sh
# kill -9 at random moments (issue 10, item 7): `collect --jobs 2` (the whole
# process group: parent, workers and the keeper) and `decompose`, each killed at
# 10 moments drawn from a fixed seed between 0 and the measured length of an
# uninterrupted run. After each kill the database passes `PRAGMA
# integrity_check`; the same command run again to completion must then give the
# same content as the uninterrupted run: a deterministic dump of the contract
# tables (every column but timestamps and seconds; reals by quote(), which reads
# back exactly) and the checkpoints' bytes — not the file's bytes, whose page
# layout may differ. Prints "kill: N of 20 identical after resume".
# Needs BVTOOL, BV_TMP, sqlite3, setsid, flock and Fashion-MNIST from Debian.
# BV_KILL_SEED picks other moments (default 10).
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_kill.$$
mkdir -p "$t"
cd "$t"
seed=${BV_KILL_SEED:-10}
C="--train-subset 1000 --teacher mlp:16 --teacher-epochs 1 --student mlp:8 --epochs 2 --seeds 3 --methods ce,kd,wsl --temps 2,4,8 --jobs 2"
D="--bootstrap 20"

# what a collect recorded, by cell (run ids are assigned in a fixed order;
# checkpoint paths without the database's name)
collect_dump() {
	sqlite3 "$1" "
	SELECT 'config', key, value FROM config WHERE key != 'bvtool_version' ORDER BY key;
	SELECT 'run', id, method, quote(temperature), quote(alpha), quote(gamma), seed, status,
	       quote(test_acc), epochs, model, substr(checkpoint, instr(checkpoint, '/'))
	       FROM runs ORDER BY id;
	SELECT 'sample', split, sample_idx, label FROM samples ORDER BY split, sample_idx;
	SELECT 'inbag', seed, sample_idx, count FROM inbag ORDER BY seed, sample_idx;
	SELECT 'metric', run_id, epoch, quote(lr), quote(train_loss), quote(train_acc),
	       quote(test_acc), quote(wsl_weight), quote(filtered) FROM metrics ORDER BY run_id, epoch;
	SELECT 'snapshot', run_id, epoch, split, n, k, hex(logits) FROM snapshots
	       ORDER BY run_id, epoch, split;" | cksum
	(cd "$1.ckpt" && cksum $(ls)) | cksum
}

# what a decompose wrote
decompose_dump() {
	sqlite3 "$1" "
	SELECT 'stat', quote(temperature), epoch, split, sample_idx, method, quote(bias),
	       quote(variance), quote(loss), quote(regularization), n_seeds, quote(p_true),
	       quote(acc), quote(wsl_weight), quote(teacher_p_true) FROM sample_stats
	       ORDER BY temperature, epoch, split, method, sample_idx;
	SELECT 'decomposition', quote(temperature), epoch, split, criterion, n_samples, seeds,
	       quote(max_identity_error) FROM decompositions ORDER BY temperature, epoch, split;
	SELECT 'correlation', split, epoch, method, criterion, n_points, quote(pearson_r),
	       quote(pearson_p), quote(spearman_rho), quote(spearman_p), quote(r_ci_low),
	       quote(r_ci_high), n_boot FROM correlations ORDER BY split, epoch, method;" | cksum
}

now_ms() { date +%s%3N; }

# 10 delays in seconds, uniform in [0, $1 ms), from the seed $2
delays() { awk -v ms="$1" -v s="$2" 'BEGIN { srand(s); for (i = 0; i < 10; i++) printf "%.3f\n", rand() * ms / 1000 }'; }

# run "$@" in a process group of its own, kill -9 the group after $1 seconds
kill_after() {
	d=$1
	shift
	setsid "$@" >/dev/null 2>&1 &
	pid=$!
	sleep "$d"
	kill -KILL -"$pid" 2>/dev/null || true # (dash's kill takes no --)
	wait "$pid" 2>/dev/null || true
}

intact() {
	[ ! -e "$1" ] || [ "$(sqlite3 "$1" "PRAGMA integrity_check")" = ok ]
}

same=0
cut=0   # kills that left work undone (the rest came before the start or after the end)
mixed=0 # decompose kills that left statistics without their correlations

# --- collect --jobs 2
t0=$(now_ms)
"$bv" collect --db ref.db $C >/dev/null
ms=$(($(now_ms) - t0))
collect_ms=$ms
ref=$(collect_dump ref.db)
i=0
for d in $(delays "$ms" "$seed"); do
	i=$((i + 1))
	rm -rf k.db k.db-wal k.db-shm k.db.ckpt
	kill_after "$d" "$bv" collect --db k.db $C
	# every process of the group is gone once nothing holds the lock
	[ ! -e k.db ] || flock -w 10 k.db true
	assert "collect killed at ${d}s: integrity_check is ok" intact k.db
	[ -e k.db ] && [ "$(sqlite3 k.db "SELECT count(*) FROM runs WHERE status = 'done'")" = 22 ] ||
		cut=$((cut + 1))
	run "$bv" collect --db k.db $C
	assert "collect killed at ${d}s: the rerun completes (status $status)" [ "$status" = 0 ]
	if [ "$(collect_dump k.db)" = "$ref" ]; then
		same=$((same + 1))
	else
		echo "collect killed at ${d}s: differs from the uninterrupted run after resume" >&2
	fi
done

# --- decompose on a copy of the collected database
"$bv" collect --db ref.db $C >/dev/null # (all done: nothing changes)
cp ref.db base.db
t0=$(now_ms)
"$bv" decompose --db ref.db $D >/dev/null
ms=$(($(now_ms) - t0))
ref=$(decompose_dump ref.db)
n_corr_ref=$(sqlite3 ref.db "SELECT count(*) FROM correlations")
for d in $(delays "$ms" "$((seed + 1))"); do
	rm -f k.db k.db-wal k.db-shm
	cp base.db k.db
	kill_after "$d" "$bv" decompose --db k.db $D
	assert "decompose killed at ${d}s: integrity_check is ok" intact k.db
	n_corr=$(sqlite3 k.db "SELECT count(*) FROM correlations")
	[ "$n_corr" = "$n_corr_ref" ] || cut=$((cut + 1))
	[ "$n_corr" = 0 ] && [ "$(sqlite3 k.db "SELECT count(*) FROM sample_stats")" != 0 ] &&
		mixed=$((mixed + 1))
	run "$bv" decompose --db k.db $D
	assert "decompose killed at ${d}s: the rerun completes (status $status)" [ "$status" = 0 ]
	if [ "$(decompose_dump k.db)" = "$ref" ]; then
		same=$((same + 1))
	else
		echo "decompose killed at ${d}s: differs from the uninterrupted run after resume" >&2
	fi
done

echo "kill: $same of 20 identical after resume (collect ${collect_ms} ms, decompose ${ms} ms, seed $seed; $cut of 20 kills cut work short; $mixed left statistics without correlations)"
assert "most kills came mid-run ($cut of 20)" [ "$cut" -ge 10 ]
assert "every killed run resumes to the uninterrupted result ($same of 20)" [ "$same" = 20 ]

cd /
rm -rf "$t"
finish
