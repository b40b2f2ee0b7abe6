#!/bin/sh
# bvtool import and export, end to end (issue 12): a layout in every form the
# manifest allows is imported and decomposed; importing it again changes
# nothing; import(export(db)) equals db for an imported and for a collected
# database (runs, metrics, snapshots byte for byte; decompose's rows too);
# every bad input is one line, its documented exit status, and the database
# exactly as it was (cksum), or no database at all when there was none.
# Needs BVTOOL, BV_TMP, /usr/bin/python3 with NumPy, sqlite3, Fashion-MNIST.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
t=$BV_TMP/cli_import.$$
rm -rf "$t"
mkdir -p "$t"
cd "$t"
layout() { $py "$here/import_layout.py" "$@"; }
sum() { cksum <"$1"; }
q() { sqlite3 "$1" "$2"; }

# --- a good layout, imported and decomposed
layout make good
run "$bv" import --db a.db good
assert "import exits 0 (status $status: $(cat "$err"))" [ "$status" = 0 ]
assert "5 runs added" grep -q "import: 5 runs added, 0 unchanged, 0 replaced" "$out"
assert "the runs are done" [ "$(q a.db "SELECT count(*) FROM runs WHERE status = 'done'")" = 5 ]
assert "3 epochs x 2 splits per student" \
	[ "$(q a.db "SELECT count(*) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method != 'teacher'")" = 24 ]
assert "the teacher's snapshots at its epoch 9" \
	[ "$(q a.db "SELECT group_concat(s.epoch || s.split) FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method = 'teacher' ORDER BY s.split")" = "9test,9train" ]
assert "given test_acc kept (percent to fraction)" \
	[ "$(q a.db "SELECT test_acc FROM runs WHERE method = 'kd' AND seed = 1")" = 0.625 ]
assert "unknown keys kept in config" \
	[ "$(q a.db "SELECT value FROM config WHERE key = 'import.extras'")" = '{"lab":{"notebook":"toy.ipynb"}}' ]
assert "the students' model and planned epochs in config, for report" \
	[ "$(q a.db "SELECT group_concat(key || '=' || value, ' ') FROM (SELECT * FROM config WHERE key IN ('student', 'epochs', 'teacher') ORDER BY key)")" = "epochs=3 student=net-s teacher=net-l" ]
assert "a run's unknown keys kept" \
	[ "$(q a.db "SELECT value FROM config WHERE key = 'import.run.ce-s1'")" = '{"lr_note":"cosine"}' ]
# the float16 test logits of kd seed 1 epoch 2, read back from the database, equal NumPy's float32 of them
assert "float16 converted exactly" $py -c "
import numpy as np, sqlite3
db = sqlite3.connect('a.db')
(b,) = db.execute(\"SELECT s.logits FROM snapshots s JOIN runs r ON r.id = s.run_id WHERE r.method = 'kd' AND r.seed = 1 AND s.epoch = 2 AND s.split = 'test'\").fetchone()
want = np.load('good/kd_T4_s1_e2_test.npy').astype('<f4').tobytes()
raise SystemExit(b != want)"
run "$bv" decompose --db a.db --temp 4
assert "decompose exits 0 on an import (status $status: $(cat "$err"))" [ "$status" = 0 ]
run "$bv" decompose --db a.db --temp 4 --split oob
assert "decompose --split oob exits 0 (status $status: $(cat "$err"))" [ "$status" = 0 ]
run "$bv" report --db a.db --format json
assert "report exits 0" [ "$status" = 0 ]
run "$bv" status --db a.db
assert "status exits 0" [ "$status" = 0 ]

# --- the same import again: nothing changes, not a byte
s0=$(sum a.db)
run "$bv" import --db a.db good
assert "re-import exits 0" [ "$status" = 0 ]
assert "re-import: all unchanged" grep -q "import: 0 runs added, 5 unchanged, 0 replaced" "$out"
assert "re-import leaves the database byte for byte" [ "$(sum a.db)" = "$s0" ]

# --- a manifest with one more run adds it
cp -r good more
$py - more <<'PY'
import json, sys, numpy as np
d = sys.argv[1]
m = json.load(open(f"{d}/manifest.json"))
np.save(f"{d}/wsl.npy", np.random.default_rng(3).normal(size=(3, 40, 5)).astype(np.float32))
m["runs"].append({"method": "wsl", "temperature": 4, "seed": 1, "epochs": [1, 2, 3],
                  "logits": {"test": "wsl.npy"}})
json.dump(m, open(f"{d}/manifest.json", "w"))
PY
run "$bv" import --db a.db more
assert "more runs: 1 added, 5 unchanged" grep -q "import: 1 run added, 5 unchanged, 0 replaced" "$out"

# --- export, then import of the export: the same database
run "$bv" export --db a.db --out ex
assert "export exits 0 (status $status: $(cat "$err"))" [ "$status" = 0 ]
assert "no partial directory left" [ -z "$(ls -d ex.partial-* 2>/dev/null)" ]
assert "stats written as npy and csv" [ -f ex/stats/test_T4_e3_kd.npy ] && [ -f ex/stats/test_T4_e3_kd.csv ]
assert "the stats npy equals sample_stats" $py -c "
import numpy as np, sqlite3
a = np.load('ex/stats/test_T4_e3_kd.npy')
rows = sqlite3.connect('a.db').execute(\"SELECT sample_idx, bias, variance, loss FROM sample_stats WHERE method = 'kd' AND split = 'test' AND epoch = 3 AND temperature = 4 ORDER BY sample_idx\").fetchall()
raise SystemExit(not (a.shape == (40, 10) and np.array_equal(a[:, :4], np.array(rows))))"
run "$bv" import --db b.db ex
assert "import of the export exits 0 (status $status: $(cat "$err"))" [ "$status" = 0 ]
run layout same a.db b.db
assert "import(export(a)) = a: $(cat "$out")" [ "$status" = 0 ]
expect 3 "bvtool export: 'ex' exists and is not empty (export writes a new directory)" \
	"$bv" export --db a.db --out ex
expect 3 "bvtool export: cannot write 'no/such': directory 'no' does not exist" \
	"$bv" export --db a.db --out no/such
expect 2 "bvtool export: --out DIR is required" "$bv" export --db a.db

# --- a collected database: export, import, the same runs, metrics, snapshots and stats
G="--train-subset 300 --teacher mlp:8 --teacher-epochs 1 --student mlp:8 --epochs 2 --seeds 2 --methods ce,kd,wsl --temps 4 --record-epochs all --record-train"
run "$bv" collect --db c.db $G
assert "collect exits 0 (status $status: $(cat "$err"))" [ "$status" = 0 ]
run "$bv" export --db c.db --out cx
assert "export of a collect exits 0 (status $status: $(cat "$err"))" [ "$status" = 0 ]
run "$bv" import --db d.db cx
assert "import of it exits 0 (status $status: $(cat "$err"))" [ "$status" = 0 ]
run layout same c.db d.db
assert "import(export(collect)) = collect: $(cat "$out")" [ "$status" = 0 ]
"$bv" decompose --db c.db --temp 4 >/dev/null
"$bv" decompose --db d.db --temp 4 >/dev/null
assert "decompose gives the same rows on both" [ "$(q c.db "SELECT method, sample_idx, bias, variance, loss, regularization, wsl_weight FROM sample_stats ORDER BY 1, 2" | cksum)" = "$(q d.db "SELECT method, sample_idx, bias, variance, loss, regularization, wsl_weight FROM sample_stats ORDER BY 1, 2" | cksum)" ]
expect 4 "bvtool collect: database 'd.db' holds imported runs (bvtool import); collect into another --db" \
	"$bv" collect --db d.db $G
expect 4 "bvtool import: database 'c.db' holds a collection of bvtool collect; import into another --db" \
	"$bv" import --db c.db good

# --- bad input: one line, its status, the database as it was (and none made)
# bad_case NAME STATUS MESSAGE-SUBSTRING PYTHON: a copy of good/ changed by PYTHON
# (d: its directory, m: its manifest, saved after), imported into a.db and into
# a missing database
bad_case() {
	name=$1 st=$2 bmsg=$3 code=$4
	rm -rf "bad_$name"
	cp -r good "bad_$name"
	$py - "bad_$name" "$code" <<'PY'
import json, sys, numpy as np
d, code = sys.argv[1], sys.argv[2]
m = json.load(open(f"{d}/manifest.json"))
def npy(name, a): np.save(f"{d}/{name}", a)
def raw(name, b): open(f"{d}/{name}", "wb").write(b)
def read(name): return open(f"{d}/{name}", "rb").read()
exec(code)
if m is not None:
    json.dump(m, open(f"{d}/manifest.json", "w"))
PY
	s0=$(sum a.db)
	expect_sub "$st" "$bmsg" "$bv" import --db a.db "bad_$name"
	assert "$name: a.db unchanged" [ "$(sum a.db)" = "$s0" ]
	expect_sub "$st" "$bmsg" "$bv" import --db none.db "bad_$name"
	assert "$name: no database made" [ ! -e none.db ]
}
bad_case magic 4 "bad_magic/teacher_test.npy" 'raw("teacher_test.npy", b"NOTNUMPY" + read("teacher_test.npy")[8:])'
bad_case header 4 "bad_header/teacher_test.npy" 'raw("teacher_test.npy", read("teacher_test.npy")[:40])'
bad_case data 4 "bad_data/ce_s1_test.npy" 'raw("ce_s1_test.npy", read("ce_s1_test.npy")[:-4])'
bad_case bigendian 4 "big-endian" 'npy("teacher_test.npy", np.zeros((40, 5), ">f4"))'
bad_case complex 4 "bad_complex/teacher_test.npy" 'npy("teacher_test.npy", np.zeros((40, 5), np.complex64))'
bad_case n 4 "'bad_n/teacher_test.npy': teacher.logits.test holds (39, 5), expected (40, 5): 40 test labels, 5 classes" \
	'npy("teacher_test.npy", np.zeros((39, 5), np.float32))'
bad_case k 4 "'bad_k/ce_s1_test.npy': runs[0].logits.test holds (3, 40, 6), expected (3, 40, 5): 3 epochs, 40 test labels, 5 classes" \
	'npy("ce_s1_test.npy", np.zeros((3, 40, 6), np.float32))'
bad_case kepoch 4 "'bad_kepoch/kd_T4_s1_e3_test.npy': runs[1].logits.test holds (40, 4), expected (40, 5): 40 test labels, 5 classes" \
	'npy("kd_T4_s1_e3_test.npy", np.zeros((40, 4), np.float32))'
bad_case nan 4 "'bad_nan/ce_s2_test.npy': logit (2, 17, 3) is NaN (runs[2].logits.test)" \
	'a = np.load(f"{d}/ce_s2_test.npy"); a[2, 17, 3] = np.nan; npy("ce_s2_test.npy", a)'
bad_case inf 4 "'bad_inf/teacher_train.npy': logit (5, 0) is infinite (teacher.logits.train)" \
	'a = np.load(f"{d}/teacher_train.npy"); a[5, 0] = -np.inf; npy("teacher_train.npy", a)'
bad_case label 4 "'bad_label/labels_test.npy': label 7 is 5, outside 0..4 (classes 5)" \
	'a = np.load(f"{d}/labels_test.npy"); a[7] = 5; npy("labels_test.npy", a)'
bad_case missing 3 "bad_missing/ce_s1_train.npy" 'import os; os.remove(f"{d}/ce_s1_train.npy")'
bad_case member 3 "has no member 'e9'" 'm["runs"][1]["logits"]["train"][2] = "kd_s1_train.npz:e9"'
bad_case dup 4 "repeats" 'm["runs"].append(dict(m["runs"][1]))'
bad_case json 4 "not JSON" 'raw("manifest.json", b"{\"format\": \"bvtool-import\", "); m = None'
bad_case nokey 4 "classes" 'del m["classes"]'
bad_case method 4 "unknown method 'dkd'" 'm["runs"][0]["method"] = "dkd"'
bad_case inbag 4 "'bad_inbag/inbag_s1.npy': in-bag count 3 is -1, expected 0..60" \
	'a = np.load(f"{d}/inbag_s1.npy"); a[3] = -1; npy("inbag_s1.npy", a)'
bad_case fortran 4 "bad_fortran/teacher_test.npy" \
	'npy("teacher_test.npy", np.asfortranarray(np.zeros((40, 5), np.float32)))'
bad_case noacc 4 "runs[0]: no test accuracy at epoch 1" 'del m["runs"][0]["logits"]["test"]'
expect 2 "bvtool import: which directory? (one holding manifest.json, docs/import.md)" "$bv" import --db a.db
expect_sub 3 "nowhere/manifest.json" "$bv" import --db a.db nowhere

# --- changed content: refused, then replaced with --replace
cp -r good changed
$py -c "
import numpy as np
a = np.load('changed/ce_s1_test.npy'); a[0, 0, 0] += 1; np.save('changed/ce_s1_test.npy', a)"
s0=$(sum a.db)
expect 4 "bvtool import: database 'a.db' holds ce seed 1 with other content than 'changed/manifest.json' runs[0] (use --replace to rewrite it, or another --db)" \
	"$bv" import --db a.db changed
assert "refused: a.db unchanged" [ "$(sum a.db)" = "$s0" ]
run "$bv" import --db a.db --replace changed
assert "--replace: 1 replaced" grep -q "import: 0 runs added, 4 unchanged, 1 replaced" "$out"
# another dataset into the same database
cp -r good other
$py -c "
import json; m = json.load(open('other/manifest.json')); m['dataset'] = 'toy2'; json.dump(m, open('other/manifest.json', 'w'))"
s0=$(sum a.db)
expect 4 "bvtool import: database 'a.db' holds an import of dataset 'toy' with 5 classes, not 'toy2' with 5 (use another --db)" \
	"$bv" import --db a.db other
assert "other dataset: a.db unchanged" [ "$(sum a.db)" = "$s0" ]

# --- sizes: 1,000 classes (ImageNet), 50,000 samples in a split
for shape in "1000 64 100" "3 50000 50000"; do
	set -- $shape
	$py - "big_$1" "$1" "$2" "$3" <<'PY'
import json, os, sys, numpy as np
d, K, n_test, n_train = sys.argv[1], *map(int, sys.argv[2:])
os.makedirs(d)
rng = np.random.default_rng(K)
np.save(f"{d}/y.npy", rng.integers(0, K, n_test).astype(np.int16))
np.save(f"{d}/ytr.npy", rng.integers(0, K, n_train).astype(np.uint32))
np.save(f"{d}/t.npy", rng.normal(size=(n_test, K)).astype(np.float32))
runs = []
for seed in (1, 2, 3):
    for method in ("ce", "kd"):
        np.save(f"{d}/{method}{seed}.npy", rng.normal(size=(2, n_test, K)).astype(np.float32))
        np.save(f"{d}/{method}{seed}tr.npy", rng.normal(size=(2, n_train, K)).astype(np.float32))
        runs.append({"method": method, "seed": seed, "epochs": [5, 10],
                     "logits": {"test": f"{method}{seed}.npy", "train": f"{method}{seed}tr.npy"},
                     **({"temperature": 4} if method == "kd" else {})})
json.dump({"format": "bvtool-import", "version": 1, "dataset": "big", "classes": K,
           "labels": {"test": "y.npy", "train": "ytr.npy"},
           "teacher": {"logits": {"test": "t.npy"}}, "runs": runs}, open(f"{d}/manifest.json", "w"))
PY
	run "$bv" import --quiet --db "big_$1.db" "big_$1"
	assert "K = $1, N = $2: import exits 0 ($(cat "$err"))" [ "$status" = 0 ]
	run "$bv" decompose --db "big_$1.db" --temp 4
	assert "K = $1, N = $2: decompose exits 0 ($(cat "$err"))" [ "$status" = 0 ]
	assert "K = $1, N = $2: every sample decomposed, loss = bias + variance" \
		[ "$(q "big_$1.db" "SELECT count(*) = 2 * 2 * $2 AND max(abs(loss - bias - variance)) < 1e-9 FROM sample_stats")" = 1 ]
done

# --- kill -9 mid-import: whole runs only, and the next import finishes it
$py "$here/../bench/import_gen.py" big --seeds 2 --epochs 3 --n 10000 --classes 100
$py - big <<'PY'
import json, sys
m = json.load(open(f"{sys.argv[1]}/manifest.json"))
m["runs"] = m["runs"][:1]
json.dump(m, open(f"{sys.argv[1]}/manifest.json", "w"))
PY
cp -r big small
$py "$here/../bench/import_gen.py" big2 --seeds 2 --epochs 3 --n 10000 --classes 100
rm -rf big && mv big2 big
"$bv" import --quiet --db k.db small >/dev/null
# kill_after_first DB: import big into DB, kill -9 once it has committed one run
kill_after_first() {
	"$bv" import --db "$1" big >kill.out 2>&1 &
	pid=$!
	i=0
	while ! grep -q "added" kill.out && [ $i -lt 3000 ]; do sleep 0.01; i=$((i + 1)); done
	kill -9 $pid 2>/dev/null || true
	wait $pid 2>/dev/null || true
}
kill_after_first k.db
n_done=$(q k.db "SELECT count(*) FROM runs")
assert "killed mid-import (runs in k.db: $n_done of 7)" [ "$n_done" -gt 2 ] && [ "$n_done" -lt 7 ]
assert "only whole runs: 3 test snapshots and a done status each" \
	[ "$(q k.db "SELECT count(*) FROM runs r WHERE status != 'done' OR (SELECT count(*) FROM snapshots s WHERE s.run_id = r.id) != CASE WHEN method = 'teacher' THEN 1 ELSE 3 END")" = 0 ]
run "$bv" import --db k.db big
assert "the next import finishes it" grep -q "unchanged, 0 replaced" "$out"
"$bv" import --quiet --db clean.db big >/dev/null
run layout same k.db clean.db
assert "resumed = clean import: $(cat "$out")" [ "$status" = 0 ]
# a new database: nothing under its name after a kill, then a whole import
kill_after_first new.db
assert "a killed first import leaves no database" [ ! -e new.db ]
rm -f new.db.import-*
run "$bv" import --db new.db big
run layout same new.db clean.db
assert "then a whole import: $(cat "$out")" [ "$status" = 0 ]

cd /
rm -rf "$t"
finish
