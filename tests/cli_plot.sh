#!/bin/sh
# `bvtool plot` end to end on a small collected and decomposed database: every
# figure's data file against SQL over the database, the images rendered by
# gnuplot (PNG signature and size; svg and pdf headers), every script rendered
# again by hand with the dumb terminal and with `gnuplot *.gp` from the output
# directory, and every bad input (exact stderr line, exit status, nothing
# written). Without gnuplot on the machine the rendering checks are skipped,
# visibly, and the data files are still checked.
# Needs BVTOOL, BV_TMP, sqlite3, awk and Fashion-MNIST; gnuplot for rendering.
set -eu
. "$(dirname "$0")/lib.sh"
bv=$BVTOOL
t=$BV_TMP/cli_plot.$$
mkdir -p "$t"
cd "$t"
q() { sqlite3 -separator ' ' -cmd '.nullvalue NaN' "$1" "$2"; }
# |a - b| <= tol
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }
# the rows of a data file (no # lines)
rows() { grep -v '^#' "$1"; }
# same FILE_A FILE_B TOL: the same number of rows and fields, numbers within
# TOL relative (NaN only equals NaN)
same() {
	awk -v tol="$3" '
		NR == FNR { a[FNR] = $0; n = FNR; next }
		{
			m = FNR
			k = split(a[FNR], x, " ")
			if (k != NF) bad = 1
			for (i = 1; i <= NF; i++) {
				if (x[i] == "NaN" || $i == "NaN") { if (x[i] != $i) bad = 1; continue }
				d = x[i] - $i; if (d < 0) d = -d
				s = x[i] < 0 ? -x[i] : x[i]
				if (d > tol * (1 + s)) bad = 1
			}
		}
		END { exit bad || m != n }' "$1" "$2"
}
png_ok() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$(wc -c <"$1")" -gt 10000 ]; }
have_gnuplot=0
command -v gnuplot >/dev/null 2>&1 && have_gnuplot=1
skipped() { echo "skipped: gnuplot not found ($1)"; }
figs="bias_variance delta_scatter share_vs_temperature count_vs_accuracy accuracy_epochs wsl_weights"

G="--train-subset 2000 --teacher mlp:64 --teacher-epochs 2 --student mlp:16 --epochs 3"
"$bv" collect --db a.db $G --seeds 3 --temps 1,2,4 >/dev/null
cp a.db fresh.db

# --- before any decompose: exit 8, and no output directory
expect 8 "bvtool plot: 'fresh.db' has no decomposition yet: run bvtool decompose --db fresh.db first" \
	"$bv" plot --db fresh.db --out none
assert "no output directory after a refused plot" [ ! -e none ]

"$bv" decompose --db a.db --bootstrap 0 >/dev/null

# --- plot: the scripts and data files, and the images when gnuplot is here
if [ $have_gnuplot = 1 ]; then
	run "$bv" plot --db a.db --out out
	assert "plot exits 0 (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
	assert "the last line sums up" [ "$(tail -n 1 "$out")" = "plotted 6 figures in 'out' (T = 4, test split, epoch 3); each has its .gp script and .dat data" ]
	assert "nothing on stderr" [ ! -s "$err" ]
	for f in $figs; do
		assert "a line for out/$f.png" grep -q "^out/$f.png: " "$out"
		assert "$f.png is a PNG of some size" png_ok "out/$f.png"
	done
else
	skipped "the plot runs without gnuplot: exit 7, scripts and data only"
	run "$bv" plot --db a.db --out out
	assert "plot without gnuplot exits 7 (status $status)" [ "$status" = 7 ]
fi
for f in $figs; do
	assert "out/$f.gp written" [ -s "out/$f.gp" ]
	assert "out/$f.dat written" [ -s "out/$f.dat" ]
	assert "$f.dat names its columns" grep -q "^# columns: " "out/$f.dat"
	assert "$f.dat quotes its SQL" grep -q "^#   SELECT \|^#   WITH " "out/$f.dat"
	assert "$f.gp reads its data file by a relative name" grep -q "'$f.dat'" "out/$f.gp"
done
assert "no temporary file left" [ -z "$(ls out | grep tmp)" ]

# --- 1. bias_variance: the mean bias and variance of each method at T = 4, per epoch
q a.db "SELECT epoch,
  (SELECT avg(bias) FROM sample_stats s WHERE s.temperature = 4 AND s.split = 'test' AND s.epoch = e.epoch AND method = 'ce'),
  (SELECT avg(variance) FROM sample_stats s WHERE s.temperature = 4 AND s.split = 'test' AND s.epoch = e.epoch AND method = 'ce'),
  (SELECT avg(bias) FROM sample_stats s WHERE s.temperature = 4 AND s.split = 'test' AND s.epoch = e.epoch AND method = 'kd'),
  (SELECT avg(variance) FROM sample_stats s WHERE s.temperature = 4 AND s.split = 'test' AND s.epoch = e.epoch AND method = 'kd'),
  (SELECT avg(bias) FROM sample_stats s WHERE s.temperature = 4 AND s.split = 'test' AND s.epoch = e.epoch AND method = 'wsl'),
  (SELECT avg(variance) FROM sample_stats s WHERE s.temperature = 4 AND s.split = 'test' AND s.epoch = e.epoch AND method = 'wsl')
  FROM (SELECT DISTINCT epoch FROM decompositions WHERE temperature = 4 AND split = 'test') e ORDER BY epoch" >want
rows out/bias_variance.dat >got
assert "bias_variance: 3 epochs" [ "$(wc -l <got)" = 3 ]
assert "bias_variance: the means are AVG(bias), AVG(variance) of sample_stats" same got want 1e-9

# --- 2. delta_scatter: one row per test sample, kd - ce, quadrants
n=$(q a.db "SELECT count(*) FROM samples WHERE split = 'test'")
rows out/delta_scatter.dat >got
assert "delta_scatter: a row per test sample ($(wc -l <got) vs $n)" [ "$(wc -l <got)" = "$n" ]
q a.db "SELECT k.sample_idx, k.variance - c.variance, k.bias - c.bias, k.regularization
  FROM sample_stats k JOIN sample_stats c USING (temperature, epoch, split, sample_idx)
  WHERE k.method = 'kd' AND c.method = 'ce' AND temperature = 4 AND epoch = 3 AND split = 'test'
  ORDER BY k.sample_idx" >want
assert "delta_scatter: the differences and flags are SQL's" same got want 1e-9
quads=$(sed -n 's/^#   bias [a-z]*, variance [a-z]*: \([0-9]*\)$/\1/p' out/delta_scatter.dat | awk '{ s += $1 } END { print s }')
assert "delta_scatter: the quadrant counts sum to N ($quads)" [ "$quads" = "$n" ]
reg=$(q a.db "SELECT sum(regularization) FROM sample_stats WHERE method = 'kd' AND temperature = 4 AND epoch = 3 AND split = 'test'")
assert "delta_scatter: bias up, variance down = the bv regularization samples ($reg)" grep -q "^#   bias up, variance down: $reg\$" out/delta_scatter.dat
assert "delta_scatter: the quadrant labels are in the script" grep -qF "set label 2 'bias up, variance down'.\"\\n\".'$reg (" out/delta_scatter.gp
assert "delta_scatter: zero axes drawn" grep -q "^set xzeroaxis" out/delta_scatter.gp

# --- 3. share_vs_temperature: shares from regularization_counts, accuracy from runs
q a.db "SELECT k.temperature, 100 * k.share, 100 * w.share,
  (SELECT 100 * avg(test_acc) FROM runs WHERE method = 'kd' AND temperature = k.temperature AND status = 'done'),
  (SELECT 100 * avg(test_acc) FROM runs WHERE method = 'wsl' AND temperature = k.temperature AND status = 'done')
  FROM regularization_counts k JOIN regularization_counts w USING (temperature, epoch, split)
  WHERE k.method = 'kd' AND w.method = 'wsl' AND epoch = 3 AND split = 'test' ORDER BY temperature" >want
rows out/share_vs_temperature.dat >got
assert "share_vs_temperature: shares and accuracies per temperature" same got want 1e-9
assert "share_vs_temperature: accuracy on the second axis" grep -q "axes x1y2" out/share_vs_temperature.gp

# --- 4. count_vs_accuracy: counts from regularization_counts, accuracy from run_accuracy, r from correlations
q a.db "SELECT c.temperature,
  (SELECT 100 * avg(final_acc) FROM run_accuracy WHERE method = 'kd' AND temperature = c.temperature AND status = 'done'),
  c.n_regularization
  FROM regularization_counts c WHERE method = 'kd' AND epoch = 3 AND split = 'test' ORDER BY temperature" >want
rows out/count_vs_accuracy.dat >got
assert "count_vs_accuracy: a point per temperature, equal to the database" same got want 1e-9
r=$(q a.db "SELECT pearson_r FROM correlations WHERE method = 'kd' AND split = 'test' AND epoch = 3")
got_r=$(sed -n 's/^# Pearson r = \([^,]*\), .*from the correlations table:$/\1/p' out/count_vs_accuracy.dat)
assert "count_vs_accuracy: r from the correlations table ($got_r vs $r)" near "${got_r:-x}" "$r" 1e-9
assert "count_vs_accuracy: r and rho in the key" grep -q "title 'Pearson r = -\?[0-9.]*, Spearman rho = -\?[0-9.]*" out/count_vs_accuracy.gp
# the least-squares line against awk's
fit=$(awk '{ n++; x[n] = $2; y[n] = $3; mx += $2; my += $3 } END { mx /= n; my /= n
	for (i = 1; i <= n; i++) { sxx += (x[i] - mx) ^ 2; sxy += (x[i] - mx) * (y[i] - my) }
	b = sxy / sxx; printf "%.15g %.15g", my - b * mx, b }' got)
got_a=$(sed -n 's/^# least squares: .* with a = \([^,]*\), b = \([^ ]*\) .*/\1/p' out/count_vs_accuracy.dat)
got_b=$(sed -n 's/^# least squares: .* with a = \([^,]*\), b = \([^ ]*\) .*/\2/p' out/count_vs_accuracy.dat)
assert "count_vs_accuracy: intercept ($got_a vs ${fit% *})" near "${got_a:-x}" "${fit% *}" 1e-6
assert "count_vs_accuracy: slope ($got_b vs ${fit#* })" near "${got_b:-x}" "${fit#* }" 1e-8
assert "count_vs_accuracy: the line is in the script" grep -q "^b = $got_b\$" out/count_vs_accuracy.gp
# without a correlations row, r and rho are computed from the points (and agree)
cp a.db nocorr.db
sqlite3 nocorr.db "DELETE FROM correlations"
"$bv" plot --db nocorr.db --out nocorr >/dev/null 2>&1 || true
got_r=$(sed -n 's/^# Pearson r = \([^,]*\), .*from these points$/\1/p' nocorr/count_vs_accuracy.dat)
assert "count_vs_accuracy: r computed without the table ($got_r vs $r)" near "${got_r:-x}" "$r" 1e-9

# --- 5. accuracy_epochs: mean, min, max over seeds from metrics; the teacher's accuracy
acc() { # method condition -> avg, min, max of test_acc (%) at epoch e.epoch
	echo "(SELECT 100 * avg(m.test_acc) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.epoch = e.epoch AND r.status = 'done' AND $1),
	(SELECT 100 * min(m.test_acc) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.epoch = e.epoch AND r.status = 'done' AND $1),
	(SELECT 100 * max(m.test_acc) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.epoch = e.epoch AND r.status = 'done' AND $1)"
}
q a.db "SELECT e.epoch, $(acc "r.method = 'ce'"), $(acc "r.method = 'kd' AND r.temperature = 4"),
  $(acc "r.method = 'wsl' AND r.temperature = 4"), (SELECT 100 * test_acc FROM runs WHERE method = 'teacher')
  FROM (SELECT DISTINCT epoch FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.method = 'ce') e ORDER BY e.epoch" >want
rows out/accuracy_epochs.dat >got
assert "accuracy_epochs: mean and min-max band per method equal MIN/AVG/MAX over metrics" same got want 1e-9
assert "accuracy_epochs: bands drawn with filledcurves" grep -q "with filledcurves" out/accuracy_epochs.gp

# --- 6. wsl_weights: the wsl rows' weights, split by the kd flag
rows out/wsl_weights.dat >got
assert "wsl_weights: 20 bins" [ "$(wc -l <got)" = 20 ]
nreg=$(awk '{ s += $3 } END { print s }' got)
nother=$(awk '{ s += $4 } END { print s }' got)
assert "wsl_weights: the flagged group is kd's regularization samples ($nreg vs $reg)" [ "$nreg" = "$reg" ]
assert "wsl_weights: the groups cover the test samples" [ $((nreg + nother)) = "$n" ]
assert "wsl_weights: each group's shares sum to 100%" awk '{ a += $5; b += $6 } END { exit !(a > 99.999 && a < 100.001 && b > 99.999 && b < 100.001) }' got
want=$(q a.db "SELECT count(*) FROM sample_stats w JOIN sample_stats k USING (temperature, epoch, split, sample_idx)
  WHERE w.method = 'wsl' AND k.method = 'kd' AND temperature = 4 AND epoch = 3 AND split = 'test'
  AND k.regularization = 1 AND w.wsl_weight >= 0.6 AND w.wsl_weight < 0.65")
assert "wsl_weights: the bin [0.6, 0.65) of the flagged group ($want)" [ "$(awk '$1 > 0.59 && $1 < 0.61 { print $3 }' got)" = "$want" ]

# --- rendering by hand: the dumb terminal, then `gnuplot *.gp` from the directory
if [ $have_gnuplot = 1 ]; then
	for f in $figs; do
		(cd out && gnuplot -e 'term="dumb size 120,40"; outfile="'$f'.txt"' "$f.gp") >/dev/null 2>"$f.err"
		assert "$f.gp renders with the dumb terminal (stderr: $(head -c 200 "$f.err"))" [ -s "out/$f.txt" ] && [ ! -s "$f.err" ]
	done
	assert "the dumb rendering carries the title" grep -q "Mean bias and variance" out/bias_variance.txt
	rm -f out/*.png
	(cd out && gnuplot *.gp) 2>gp.err
	assert "cd out && gnuplot *.gp exits 0 without a message (stderr: $(head -c 200 gp.err))" [ ! -s gp.err ]
	for f in $figs; do
		assert "gnuplot *.gp draws $f.png" png_ok "out/$f.png"
	done
	run "$bv" plot --db a.db --out svg --format svg
	assert "--format svg exits 0" [ "$status" = 0 ]
	for f in $figs; do
		assert "$f.svg is SVG" grep -q "<svg" "svg/$f.svg"
	done
	run "$bv" plot --db a.db --out pdf --format pdf
	assert "--format pdf exits 0" [ "$status" = 0 ]
	for f in $figs; do
		assert "$f.pdf is PDF" [ "$(head -c 5 "pdf/$f.pdf")" = "%PDF-" ]
	done
else
	skipped "dumb terminal, gnuplot *.gp, svg and pdf"
fi

# --- --temp: another temperature; the default without T = 4 is the middle one
run "$bv" plot --db a.db --out t2 --temp 2
assert "--temp 2 exits as the first plot did" [ "$status" = "$([ $have_gnuplot = 1 ] && echo 0 || echo 7)" ]
want=$(q a.db "SELECT avg(bias) FROM sample_stats WHERE method = 'kd' AND temperature = 2 AND epoch = 3 AND split = 'test'")
assert "--temp 2: the kd curve is T = 2's" near "$(rows t2/bias_variance.dat | awk '$1 == 3 { print $4 }')" "$want" 1e-9
cp a.db no4.db
sqlite3 no4.db "DELETE FROM sample_stats WHERE temperature = 4; DELETE FROM decompositions WHERE temperature = 4"
"$bv" plot --db no4.db --out no4 >/dev/null 2>&1 || true
assert "without T = 4 the default is the middle temperature (1 of 1, 2)" grep -q "(T = 1; " no4/bias_variance.dat

# --- bad input
expect 2 "bvtool plot: --temp: temperature 3 is not in 'a.db' (it has 1, 2, 4)" "$bv" plot --db a.db --out bad --temp 3
expect 8 "bvtool plot: temperature 4 of 'no4.db' is not decomposed yet (decomposed: 1, 2): run bvtool decompose --db no4.db --temp 4 first" \
	"$bv" plot --db no4.db --out bad --temp 4
expect 2 "bvtool plot: --temp: bad temperature 'hot' (expected a number > 0)" "$bv" plot --db a.db --out bad --temp hot
expect 2 "bvtool plot: --format: unknown format 'gif' (expected png, svg or pdf)" "$bv" plot --db a.db --out bad --format gif
assert "no output directory after bad flags" [ ! -e bad ]
expect 3 "bvtool plot: database 'none.db' does not exist" "$bv" plot --db none.db --out bad
touch file
expect 3 "bvtool plot: cannot create the output directory 'file/figures': 'file' is not a directory" \
	"$bv" plot --db a.db --out file/figures
# gnuplot missing from PATH: the scripts and data are written, exit 7 says how to render
mkdir -p empty-path
expect 7 "bvtool plot: gnuplot is not on PATH: wrote the scripts and data of 6 figures to 'nognu'; install gnuplot (apt-get install gnuplot-nox) and render them with: cd nognu && gnuplot *.gp" \
	env PATH="$t/empty-path" "$bv" plot --db a.db --out nognu
assert "without gnuplot: 6 scripts" [ "$(ls nognu/*.gp | wc -l)" = 6 ]
assert "without gnuplot: 6 data files" [ "$(ls nognu/*.dat | wc -l)" = 6 ]
assert "without gnuplot: no image" [ -z "$(ls nognu | grep png)" ]
assert "without gnuplot: the scripts are listed" [ "$(grep -c '^nognu/.*\.gp: ' "$out")" = 6 ]
assert "without gnuplot: the data files equal those of a full plot" cmp -s nognu/delta_scatter.dat out/delta_scatter.dat
# gnuplot failing: exit 1 with its first error line, no image left
mkdir -p failing-path
printf '#!/bin/sh\necho >&2\necho "plot x" >&2\necho "     ^" >&2\necho "\\"$1\\" line 12: unexpected or unrecognized token" >&2\nexit 1\n' >failing-path/gnuplot
chmod +x failing-path/gnuplot
expect 1 "bvtool plot: gnuplot failed on 'bias_variance.gp' ('failed' is left as it was): \"bias_variance.gp\" line 12: unexpected or unrecognized token" \
	env PATH="$t/failing-path:$PATH" "$bv" plot --db a.db --out failed
assert "a failed gnuplot leaves no image" [ ! -e failed/bias_variance.png ]

# --- hostile databases (issue 10). gnuplot runs in the output directory, so
# a string that escaped its quotes would create PWNED* there or in $t
# pwned: 0 unless a PWNED file is there (removed, so that each case is judged alone)
pwned() {
	found=$(find "$t" -name 'PWNED*')
	[ -z "$found" ] && return 0
	echo "  a command ran: $found" >&2
	find "$t" -name 'PWNED*' -exec rm -f {} +
	return 1
}
want_status=$([ $have_gnuplot = 1 ] && echo 0 || echo 7)
# hostile NAME SQL: plot a copy of a.db changed by SQL into out-NAME; exits
# as a plain plot does, nothing on stderr, no PWNED file, and the rows of
# each data file have one number of fields
hostile() {
	cp a.db "h-$1.db"
	sqlite3 "h-$1.db" "$2"
	run "$bv" plot --db "h-$1.db" --out "out-$1"
	assert "$1: plot exits $want_status (status $status: $(head -n 1 "$err"))" [ "$status" = "$want_status" ]
	[ $have_gnuplot = 0 ] || assert "$1: nothing on stderr ($(head -c 300 "$err"))" [ ! -s "$err" ]
	assert "$1: no command ran" pwned
	for f in "out-$1"/*.dat; do
		[ -e "$f" ] || continue
		assert "$1: the rows of $f keep their columns" awk '/^#/ { next } n == 0 { n = NF } NF != n { exit 1 }' "$f"
	done
}
# drawn NAME FIG...: each figure's script is there, and its image with gnuplot
drawn() {
	d=$1
	shift
	for f in "$@"; do
		assert "$d: $f.gp written" [ -s "out-$d/$f.gp" ]
		[ $have_gnuplot = 0 ] || assert "$d: $f.png drawn" png_ok "out-$d/$f.png"
	done
}
# D1: the issue's exact repro (the criterion closes its quotes and backquotes a command)
hostile d1 "update decompositions set criterion='''\`touch PWNED\`'''"
drawn d1 delta_scatter
assert "d1: the criterion is a literal in the script" grep -qF "criterion ''\`touch PWNED\`'' (" out-d1/delta_scatter.gp
# variants: a newline and a shell escape, system(), a long string, double
# quotes, a macro and a backslash, a method, empty strings, a file name
hostile d1-newline "update decompositions set criterion='''' || char(10) || '!touch PWNED' || char(10)"
drawn d1-newline delta_scatter
hostile d1-system "update decompositions set criterion='''.system(''touch PWNED3'').'''"
drawn d1-system delta_scatter
hostile d1-long "update decompositions set criterion=replace(hex(zeroblob(5000)), '00', '''\`touch PWNED4\`\"\\n')"
drawn d1-long delta_scatter
hostile d1-dq "update decompositions set criterion='\"\`touch PWNED5\`\"@bv_term \\'"
drawn d1-dq delta_scatter
# quotes in a row and a macro: each quote that cannot be doubled is a piece of its own
hostile d1-quotes "update decompositions set criterion=char(39, 39, 39) || '@bv_term \`touch PWNED\`' || char(39, 39)"
drawn d1-quotes delta_scatter
hostile d1-method "PRAGMA ignore_check_constraints = ON; update runs set method='\`touch PWNED6\`''' where method = 'wsl'; update sample_stats set method='x''\`touch PWNED7\`' where method = 'wsl'"
drawn d1-method delta_scatter bias_variance
hostile d1-empty "update decompositions set criterion=''"
drawn d1-empty delta_scatter
cp a.db "q'\`touch PWNED8\`.db"
run "$bv" plot --db "q'\`touch PWNED8\`.db" --out out-d1-path
assert "d1-path: a database named with quotes and backquotes plots (status $status)" [ "$status" = "$want_status" ]
assert "d1-path: no command ran" pwned
rm -f "q'\`touch PWNED8\`.db"

# D12: no test accuracy: the accuracy figures are skipped with a reason, the others drawn, exit 0
hostile d12 "UPDATE metrics SET test_acc = NULL"
assert "d12: accuracy_epochs skipped, saying why" grep -qx "skipped accuracy_epochs: no test accuracy recorded" "$out"
assert "d12: count_vs_accuracy skipped, saying why" grep -qx "skipped count_vs_accuracy: no kd test accuracy recorded at epoch 3" "$out"
assert "d12: no file of a skipped figure" [ -z "$(ls out-d12 | grep 'accuracy_epochs\|count_vs_accuracy')" ]
drawn d12 bias_variance delta_scatter share_vs_temperature wsl_weights
[ $have_gnuplot = 0 ] || assert "d12: the last line counts 4 figures" grep -q "^plotted 4 figures in 'out-d12'" "$out"
# over an earlier full plot, a skipped figure's old files go (they would show other data)
cp -r out out-d12-over
run "$bv" plot --db h-d12.db --out out-d12-over
assert "d12 over a full plot: exits $want_status" [ "$status" = "$want_status" ]
assert "d12 over a full plot: no file of the skipped figures left" [ -z "$(ls out-d12-over | grep '^\(accuracy_epochs\|count_vs_accuracy\)\.\(gp\|dat\|png\)$')" ]
assert "d12 over a full plot: the others replaced" cmp -s out-d12-over/delta_scatter.dat out-d12/delta_scatter.dat
# and its neighbours: no rows, infinities, huge numbers, NULLs, NULL epochs, a bad temperature
hostile noruns "UPDATE runs SET status = 'failed' WHERE method != 'teacher'"
assert "noruns: accuracy_epochs skipped" grep -qx "skipped accuracy_epochs: no finished ce, kd or wsl runs" "$out"
hostile inf "UPDATE sample_stats SET bias = 1e999 WHERE method = 'kd' AND sample_idx % 7 = 0;
  UPDATE metrics SET test_acc = -1e999 WHERE epoch = 2; UPDATE runs SET test_acc = 1e999 WHERE method = 'teacher'"
drawn inf delta_scatter accuracy_epochs count_vs_accuracy
assert "inf: an infinite value is written NaN" grep -q "^[0-9]* [-0-9.e]* NaN [01]\$" out-inf/delta_scatter.dat
hostile huge "UPDATE sample_stats SET bias = 1e306 * (sample_idx % 3 - 1), variance = -1e306 * (sample_idx % 2)"
drawn huge delta_scatter
hostile infbias "UPDATE sample_stats SET bias = 1e999"
drawn infbias bias_variance
assert "infbias: delta_scatter skipped" grep -qx "skipped delta_scatter: no finite kd - ce differences at T = 4, epoch 3" "$out"
# NOT NULL dropped (CREATE TABLE AS), then NULL epochs
hostile nullepoch "PRAGMA legacy_alter_table = ON;
  CREATE TABLE m2 AS SELECT * FROM metrics; DROP TABLE metrics; ALTER TABLE m2 RENAME TO metrics;
  CREATE TABLE s2 AS SELECT * FROM sample_stats; DROP TABLE sample_stats; ALTER TABLE s2 RENAME TO sample_stats;
  UPDATE metrics SET epoch = NULL WHERE epoch = 1; UPDATE sample_stats SET epoch = NULL WHERE epoch = 1"
drawn nullepoch bias_variance accuracy_epochs
hostile badtemp "UPDATE decompositions SET temperature = -1 WHERE temperature = 1"
drawn badtemp share_vs_temperature count_vs_accuracy

# text where a number belongs would enter the figures' SQL arithmetic as 0
# (avg, 100 * test_acc): refused, naming the row, with nothing written
for c in "metrics|UPDATE metrics SET test_acc = 'high' WHERE run_id = 2 AND epoch = 3|metrics row (2, 3): test_acc is 'high', expected a number" \
	"sample_stats|UPDATE sample_stats SET wsl_weight = x'00' WHERE method = 'wsl' AND sample_idx = 4 AND epoch = 3 AND temperature = 4|sample_stats row (4.0, 3, test, wsl, 4): wsl_weight is X'00', expected a number" \
	"runs|UPDATE runs SET test_acc = 'n/a' WHERE method = 'teacher'|runs row (22): test_acc is 'n/a', expected a number"; do
	name=${c%%|*} rest=${c#*|}
	cp a.db "text-$name.db"
	sqlite3 "text-$name.db" "${rest%%|*}"
	expect 4 "bvtool plot: 'text-$name.db': ${rest#*|} (the database is damaged)" "$bv" plot --db "text-$name.db" --out "out-text-$name"
	assert "text in $name: no output directory" [ ! -e "out-text-$name" ]
done

# --- D9: interrupted and killed while gnuplot draws. A gnuplot that draws
# with the real one (or writes a stand-in image), except the script named by
# $BV_HANG: that image is begun, then it hangs until killed
mkdir -p hang-path
cat >hang-path/gnuplot <<'EOF'
#!/bin/sh
name=${1%.gp}
if [ "$1" = "${BV_HANG:-}" ]; then
	printf 'half an image' >"$name.png"
	echo $$ >"$BV_PIDFILE.tmp" && mv "$BV_PIDFILE.tmp" "$BV_PIDFILE"
	exec sleep 60
fi
[ -n "$REAL_GNUPLOT" ] && exec "$REAL_GNUPLOT" "$@"
printf 'a stand-in image\n' >"$name.png"
EOF
chmod +x hang-path/gnuplot
REAL_GNUPLOT=$(command -v gnuplot || true)
BV_PIDFILE=$t/gp.pid
export REAL_GNUPLOT BV_PIDFILE
# until_gone SECS PID: 0 once PID has exited, 1 (after killing it) when it outlives SECS
until_gone() {
	i=0
	while kill -0 "$2" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt $(($1 * 10)) ]; then kill -9 "$2" 2>/dev/null; return 1; fi
		sleep 0.1
	done
}
until_file() { i=0; while [ ! -s "$1" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done; [ -s "$1" ]; }
# the final files of a directory and their checksums (temporary names start with a dot)
sums() { (cd "$1" && cksum -- *) | sort; }
env PATH="$t/hang-path:$PATH" "$bv" plot --db a.db --out k >/dev/null 2>&1
assert "the complete plot into k has 18 files" [ "$(ls k | wc -l)" = 18 ]
before=$(sums k)
for sig in INT TERM; do
	rm -f gp.pid
	set +e
	BV_HANG=delta_scatter.gp env PATH="$t/hang-path:$PATH" "$bv" plot --db a.db --out k --temp 2 >sig.out 2>sig.err &
	pid=$!
	until_file gp.pid
	kill -"$sig" $pid
	until_gone 10 $pid
	gone=$?
	wait $pid
	status=$?
	set -e
	assert "SIG$sig: bvtool stops within 10 s" [ $gone = 0 ]
	assert "SIG$sig: exit 130 (status $status)" [ "$status" = 130 ]
	assert "SIG$sig: one line on stderr ($(cat sig.err))" [ "$(wc -l <sig.err)" = 1 ]
	assert "SIG$sig: the line says interrupted ($(cat sig.err))" \
		[ "$(cat sig.err)" = "bvtool plot: interrupted: SIG$sig while gnuplot drew 'delta_scatter'; 'k' is left as it was" ]
	assert "SIG$sig: the hanging gnuplot is killed" sh -c '! kill -0 "$(cat gp.pid)" 2>/dev/null'
	kill "$(cat gp.pid)" 2>/dev/null || true
	assert "SIG$sig: k holds the earlier figures, unchanged" [ "$(sums k)" = "$before" ]
	assert "SIG$sig: no temporary file left ($(ls -A k | grep '^\.'))" [ -z "$(ls -A k | grep '^\.')" ]
done
# kill -9: no partial image under a final name; a stray temporary that the next plot removes
rm -f gp.pid
BV_HANG=delta_scatter.gp env PATH="$t/hang-path:$PATH" "$bv" plot --db a.db --out k --temp 2 >/dev/null 2>&1 &
pid=$!
until_file gp.pid
kill -9 $pid
wait $pid || true
kill "$(cat gp.pid)" 2>/dev/null || true
assert "kill -9: k holds the earlier figures, unchanged" [ "$(sums k)" = "$before" ]
assert "kill -9: what stays behind is named as temporary ($(ls -A k | grep '^\.'))" \
	[ -z "$(ls -A k | grep '^\.' | grep -v '^\.bvtool-plot\.tmp\.')" ]
run env PATH="$t/hang-path:$PATH" "$bv" plot --db a.db --out k --temp 2
assert "after kill -9: the next plot exits 0 (status $status: $(head -n 1 "$err"))" [ "$status" = 0 ]
assert "after kill -9: the next plot removes the stray temporary ($(ls -A k | grep '^\.'))" [ -z "$(ls -A k | grep '^\.')" ]
assert "after kill -9: the next plot replaces the figures" [ "$(sums k)" != "$before" ]

cd /
rm -rf "$t"
finish
