#!/bin/sh
# docs/cluster.md's Slurm recipe on a real single-node Slurm (tests/slurm_lib.sh):
# its settings file, teacher, array and merge jobs and submit lines, taken from
# the doc and changed only in the settings' WORK and OPTS (paths, a small grid)
# and the jobs' --cpus-per-task and --mem (what one test node has), are
# submitted; the merged database must hold the same snapshots, byte for byte,
# as `bvtool collect --jobs 1` of the same grid on one machine, every cell done.
# Exit 77 (skipped) when not root or Slurm and munge are missing, except under
# CI. Needs BVTOOL, BV_TMP, sqlite3, /usr/bin/python3 and Fashion-MNIST.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/slurm_lib.sh"
slurm_need
doc=$here/../docs/cluster.md
t=$BV_TMP/cli_slurm.$$
rm -rf "$t"
mkdir -p "$t/submit" "$t/work" "$t/bin"
# 2 seeds x (ce + kd, wsl at 2 temperatures) = 10 cells, and the teacher
G="--train-subset 2000 --teacher mlp:64 --teacher-epochs 2 --student mlp:16 --epochs 2 --seeds 2 --temps 2,4"
limit=${BV_SLURM_SECONDS:-300}

# block NAME: the fenced block after the doc's `<!-- sbatch: NAME -->` line
block() {
	awk -v m="<!-- sbatch: $1 -->" '
		$0 == m { found = 1; next }
		found == 1 && /^```/ { found = 2; next }
		found == 2 && /^```$/ { exit }
		found == 2 { print }' "$doc"
}
for b in settings teacher array merge submit; do
	block "$b" >"$t/$b.doc"
	assert "docs/cluster.md has a non-empty '<!-- sbatch: $b -->' block" [ -s "$t/$b.doc" ]
done

# the settings: WORK's line and OPTS' assignment (up to its closing quote)
# replaced, nothing else; each must be there exactly once
awk -v work="WORK=$t/work" -v opts="OPTS=\"$G\"" '
	/^WORK=/ { print work; nw++; next }
	/^OPTS="/ { print opts; no++; if ($0 !~ /^OPTS=".*"$/ || $0 == "OPTS=\"") skip = 1; next }
	skip { if ($0 ~ /"$/) skip = 0; next }
	{ print }
	END { if (nw != 1 || no != 1) exit 1 }' "$t/settings.doc" >"$t/submit/grid.env" ||
	assert "the settings block has one WORK= line and one OPTS=\"...\" assignment" false
assert "the settings keep their other lines" [ "$(grep -c -v -E '^(WORK|OPTS)=' "$t/submit/grid.env")" -gt 0 ]
# the jobs: sizes only
for b in teacher array merge; do
	sed -e 's/^#SBATCH --cpus-per-task=[0-9]*$/#SBATCH --cpus-per-task=1/' \
		-e 's/^#SBATCH --mem=[0-9]*[KMGT]*$/#SBATCH --mem=500M/' \
		"$t/$b.doc" >"$t/submit/$b.sbatch"
	assert "$b.sbatch: the doc's lines but for sizes" \
		[ "$(diff "$t/$b.doc" "$t/submit/$b.sbatch" | grep -c '^>')" -le 2 ]
done
cp "$t/submit.doc" "$t/submit/submit.sh"
[ "$fail" = 0 ] || { finish; exit 1; }

# the one-machine reference, before the cluster takes the cores
run "$BVTOOL" collect --jobs 1 $G --db "$t/ref.db"
assert "the one-machine collect exits 0 (status $status)" [ "$status" = 0 ]

# `bvtool` on the PATH the jobs inherit (sbatch exports the environment)
ln -s "$BVTOOL" "$t/bin/bvtool"
PATH=$t/bin:$PATH
export PATH
slurm_start "$t/slurm"
cd "$t/submit"
run sh submit.sh
assert "the submit lines exit 0 (status $status): $(cat "$err")" [ "$status" = 0 ]
if ! slurm_wait_all "$limit"; then
	assert "every job COMPLETED, within $limit s" false
	slurm_jobs >&2
	for f in "$t"/submit/slurm-*.out; do
		[ -f "$f" ] || continue
		echo "--- $f" >&2
		tail -n 20 "$f" >&2
	done
	slurm_logs
fi
assert "three jobs, the array's four tasks among them, each once" \
	[ "$(slurm_jobs | awk '{ print $2 }' | sort | uniq -c | tr -s ' \n' ' ')" = " 1 bv-merge 4 bv-shard 1 bv-teacher " ]
shards=$(squeue -h -t all -n bv-shard -o %F | sort -u)
merge=$(squeue -h -t all -n bv-merge -o %i)

w=$t/work
assert "four shard databases" [ "$(ls "$w"/shards/shard-*.db 2>/dev/null | wc -l)" = 4 ]
n=0
for i in 0 1 2 3; do
	[ -f "$w/shards/shard-$i.db" ] || continue
	c=$(sqlite3 "$w/shards/shard-$i.db" "SELECT count(*) FROM runs WHERE method != 'teacher' AND status = 'done'")
	n=$((n + c))
	assert "task $i says it is shard $i/4, from SLURM_ARRAY_TASK_ID=$i" \
		grep -q "^shard $i/4 (--shard auto: SLURM_ARRAY_TASK_ID=$i, SLURM_ARRAY_TASK_MIN=0, SLURM_ARRAY_TASK_COUNT=4)$" "slurm-${shards}_$i.out"
done
assert "the shards hold the 10 cells once each ($n)" [ "$n" = 10 ]
assert "the merged snapshots are byte-identical to one machine's --jobs 1" \
	[ "$(snapshots_sum "$w/runs.db")" = "$(snapshots_sum "$t/ref.db")" ]
run "$BVTOOL" status --db "$w/runs.db"
assert "status: every cell and the teacher done ($(tail -n 1 "$out"))" \
	[ "$(tail -n 1 "$out")" = "11 runs: 11 done, 0 running, 0 interrupted, 0 pending, 0 failed" ]
assert "the merge job's output ends with that status line" \
	[ "$(tail -n 1 "slurm-$merge.out" 2>/dev/null)" = "$(tail -n 1 "$out")" ]

cd /
slurm_stop
if [ "$fail" = 0 ]; then rm -rf "$t" "$slurm_home"; fi
finish
