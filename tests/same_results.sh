#!/bin/sh
# Does this checkout compute what an earlier revision computed? For a
# refactoring (issue 11): builds REV in a temporary git worktree, runs the same
# work with both builds, each in a directory of its own, and compares:
#   - training, byte for byte: the checkpoints of `bvtool train` (mlp:64,
#     resnet8, cnn-small, a kd student of the mlp) and of a reduced main job,
#     and every snapshot's logits of that job;
#   - the analysis, to 1e-12 relative (where unifying the math may reorder a
#     sum): every number of sample_stats, decompositions and correlations, and
#     of each figure's .dat; the rest of those rows, the report's text apart
#     from its numbers, and the runs' statuses exactly.
#   tests/same_results.sh [REV] [BUILD_DIR]   REV default: main's first parent
#                                             (HEAD~1), BUILD_DIR default build/
# Prints one line per comparison and "same results as REV" at the end; exit 0
# when everything matches, 1 on a difference (named), 2 on a usage error.
# About 4 minutes on 2 cores (each build's work runs twice: once per build).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib-rev.sh"
rev_setup same_results.sh "${1:-HEAD~1}" "${2:-$here/build}"
command -v sqlite3 >/dev/null || {
	echo "same_results.sh: needs the sqlite3 shell (Debian package sqlite3)" >&2
	exit 2
}
rev_build

# work BVTOOL DIR: every computation compared, into DIR
work() {
	bv=$1
	mkdir -p "$2"
	(
		cd "$2"
		common="--data fashion-mnist --train-subset 2000 --epochs 2 --seed 3 --threads 1"
		"$bv" train $common --model mlp:64 --out mlp.ckpt >train.log
		"$bv" train $common --model cnn-small --batch 64 --out cnn.ckpt >>train.log
		"$bv" train --data fashion-mnist --train-subset 256 --epochs 1 --seed 3 --threads 1 --model resnet8 \
			--batch 32 --out resnet8.ckpt >>train.log
		"$bv" train $common --model mlp:32 --method kd --teacher mlp.ckpt --temp 4 --out kd.ckpt >>train.log
		BV_SEEDS=3 BV_TEMPS=1,2,4 BV_EPOCHS=3 BV_TRAIN_SUBSET=6000 BV_TEACHER_EPOCHS=2 BVTOOL="$bv" \
			"$here/scripts/main-job" >main.log 2>&1
	)
}
echo "running $rev's bvtool" >&2
work "$old" "$t/old"
echo "running this checkout's bvtool" >&2
work "$new" "$t/new"

fail=0
same() { echo "same: $1"; }
differ() {
	echo "DIFFERENT: $1"
	fail=1
}

# training: byte for byte
for f in mlp.ckpt cnn.ckpt resnet8.ckpt kd.ckpt; do
	if cmp -s "$t/old/$f" "$t/new/$f"; then same "bvtool train checkpoint $f"; else differ "bvtool train checkpoint $f"; fi
done
# collect's checkpoints, in the directory beside its database
n_ck=0
for f in "$t"/old/runs.db.ckpt/*; do
	n_ck=$((n_ck + 1))
	cmp -s "$f" "$t/new/runs.db.ckpt/${f##*/}" || differ "collect checkpoint ${f##*/}"
done
n_new=$(ls "$t"/new/runs.db.ckpt | wc -l)
[ "$n_ck" -gt 0 ] && [ "$n_ck" = "$n_new" ] && same "$n_ck checkpoints of the main job, byte for byte" ||
	differ "the main job's checkpoints ($n_ck vs $n_new)"

q() { sqlite3 -batch -noheader "$t/$1/runs.db" "$2"; }
snap="SELECT r.method, quote(r.temperature), r.seed, s.epoch, s.split, s.n, s.k, hex(s.logits)
      FROM snapshots s JOIN runs r ON r.id = s.run_id ORDER BY 1, 2, 3, 4, 5"
if [ "$(q old "$snap" | md5sum)" = "$(q new "$snap" | md5sum)" ]; then
	same "every snapshot's logits ($(q old "SELECT count(*) FROM snapshots") snapshots)"
else
	differ "snapshot logits"
fi
runs="SELECT method, quote(temperature), seed, status, quote(test_acc), epochs FROM runs ORDER BY 1, 2, 3"
[ "$(q old "$runs")" = "$(q new "$runs")" ] && same "runs" || differ "runs"

# numbers to 1e-12 relative, everything else exactly: two files of rows,
# fields split on '|' or white space
close() {
	awk -v tol=1e-12 '
		function num(x) { return x ~ /^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/ }
		NR == FNR { a[FNR] = $0; n = FNR; next }
		{
			m = FNR
			if (!(FNR in a)) { bad = 1; exit }
			na = split(a[FNR], x, /[| \t,]+/); nb = split($0, y, /[| \t,]+/)
			if (na != nb) { bad = 1; exit }
			for (i = 1; i <= na; i++) {
				if (x[i] == y[i]) continue
				if (!num(x[i]) || !num(y[i])) { bad = 1; exit }
				d = x[i] - y[i]; if (d < 0) d = -d
				s = x[i] < 0 ? -x[i] : x[i]; if (s < 1) s = 1
				if (d > tol * s) { bad = 1; exit }
			}
		}
		END { exit bad || m != n }' "$1" "$2"
}
for tab in "sample_stats ORDER BY temperature, epoch, split, method, sample_idx" \
	"decompositions ORDER BY temperature, epoch, split" \
	"correlations ORDER BY split, epoch, method"; do
	name=${tab%% *}
	cols=$(q old "SELECT group_concat(CASE WHEN name = 'created_at' THEN NULL ELSE printf('CASE typeof(%s) WHEN ''real'' THEN printf(''%%!.17g'', %s) ELSE quote(%s) END', name, name, name) END, ' || ''|'' || ') FROM pragma_table_info('$name')")
	# reals with 17 digits, the rest as SQL literals
	q old "SELECT $cols FROM $tab" >"$t/$name.old"
	q new "SELECT $cols FROM $tab" >"$t/$name.new"
	rows=$(wc -l <"$t/$name.old")
	if close "$t/$name.old" "$t/$name.new"; then same "$name ($rows rows, to 1e-12)"; else differ "$name"; fi
done
if close "$t/old/report.md" "$t/new/report.md"; then same "report.md (to 1e-12)"; else differ "report.md"; fi
for f in "$t"/old/figures/*.dat; do
	n=${f##*/}
	if [ -f "$t/new/figures/$n" ] && close "$f" "$t/new/figures/$n"; then same "figure data $n"; else differ "figure data $n"; fi
done
[ "$(ls "$t/old/figures" | grep -c '\.dat$')" = "$(ls "$t/new/figures" | grep -c '\.dat$')" ] ||
	differ "the number of figures"

if [ $fail = 0 ]; then
	echo "same results as $rev"
else
	echo "results differ from $rev" >&2
fi
exit $fail
