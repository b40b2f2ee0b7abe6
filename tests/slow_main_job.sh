#!/bin/sh
# The main job (scripts/main-job) on a reduced grid, twice: the first run makes
# the database, report and figures; the second resumes (nothing to train).
# Label `slow`: ctest -L slow.
set -eu
. "$(dirname "$0")/lib.sh"
job="$(cd "$(dirname "$0")/.." && pwd)/scripts/main-job"
t=$BV_TMP/slow_main_job.$$
mkdir -p "$t"
cd "$t"
export BV_SEEDS=3 BV_TEMPS=1,2,4 BV_EPOCHS=3 BV_TRAIN_SUBSET=5000 BV_TEACHER_EPOCHS=2
run "$job"
assert "the main job exits 0 (status $status)" [ "$status" = 0 ]
assert "it names the database" grep -q "^database: $t/runs.db" "$out"
assert "it suggests a query" grep -q "^try:  sqlite3 runs.db" "$out"
assert "report.md has the accuracy table" grep -q "^## Test accuracy" report.md
assert "report.md has the correlation" grep -q -E "^\| kd \| test \| 3 \| bv \| 3 \|" report.md
assert "report.md pairs kd-filter with kd at T=4" grep -q -F "| kd-filter - kd | 4 | 3 | " report.md
assert "the suggested query runs" sh -c "$(sed -n 's/^try:  //p' "$out") >/dev/null"
if command -v gnuplot >/dev/null 2>&1; then
	assert "figures were drawn" [ "$(ls figures/*.png | wc -l)" -ge 6 ]
	assert "the data map among them" [ -f figures/data_map.png ]
else
	echo "skipped: gnuplot not found, figures not checked"
fi
run "$job"
assert "a second run resumes (status $status)" [ "$status" = 0 ]
assert "... with nothing to train" grep -q "^all 21 cells are done (runs.db)$" "$out"
assert "... the kd-filter cells neither" grep -q "^all 3 cells are done (runs.db)$" "$out"
cd /
rm -rf "$t"
finish
