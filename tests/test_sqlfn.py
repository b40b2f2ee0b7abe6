#!/usr/bin/python3
"""Every SQL function of the loadable extension build/bvtool_sql.so against NumPy.

    /usr/bin/python3 tests/test_sqlfn.py BUILD_DIR

Loads BUILD_DIR/bvtool_sql into an in-memory SQLite connection from Python's sqlite3 and
holds each function (sqlfn/*.c, docs/sql.md) against a reference computed here in NumPy
float64 from the same float32 logits, the log-softmax in log space (z/T - logsumexp(z/T)):
  - the scalars on edge cases: logits of +-80, K = 1, K = 1000, T = 0.1 and T = 100,
    all-equal, random normal and mixed huge/small logits; doubles to 1e-12
    relative-or-absolute (|got - ref| <= 1e-12 * max(1, |ref|): relative above 1, absolute
    below), bv_argmax, bv_logit and bv_nclasses exactly;
  - every SQL error the spec names (the message must start with the function's name and
    hold the distinctive part of args.c's text), and NULL for a class out of range or NULL;
  - bv_logits(bv_logits_json(z)) == z bytewise for random float32 bit patterns (subnormals,
    1e38, -0.0 included), null <-> NaN, the JSON's numbers as short as NumPy's shortest
    round-trip repr; a K = 1000 row of 15-character numbers in a child process (it must
    not crash);
  - the aggregates over groups of B = 1, 2, 16 rows at K = 1, 10, 1000, directly and by
    GROUP BY over a table (sample, z, y); loss = bias + variance to 1e-12, bv_geomean to
    one float32 ulp, NULL over zero rows;
  - the virtual table bv_predictions on a database built here with bvtool's schema (runs,
    samples, snapshots, the predictions view): every constraint it takes, its row order,
    GROUP BY sample_idx without a temporary B-tree, every ORDER BY under every kind of
    constraint, joins, snapshots larger than its read buffer and of different n, the label
    column, a snapshot of the wrong size, a split name of 18 characters, and the same rows as the predictions view
    (also where the constraints it takes meet TEXT, BLOB, COLLATE NOCASE or NULL).
A few checks are on the edge of the spec and say so in their message: a whole REAL class
out of range (1e16) is out of range, not "a fraction"; subnormals written as shortly as
NumPy's repr.
Prints each failure, then `test_sqlfn: N checks, M failed` and the largest difference per
function; exits 1 when any check failed.
"""
import os
import sqlite3
import subprocess
import sys
from fractions import Fraction

import numpy as np

TOL = 1e-12
F32 = '<f4'

n_checks = 0
failures = []
worst = {}  # function -> [max err (rel-or-abs), max abs, max rel]


def check(ok, what):
	global n_checks
	n_checks += 1
	if not ok:
		failures.append(what)
		print('FAIL', what)
	return ok


def note_diff(fn, got, ref):
	d = abs(got - ref)
	err = d / max(1.0, abs(ref))
	rel = d / abs(ref) if ref != 0 else (0.0 if d == 0 else float('inf'))
	w = worst.setdefault(fn, [0.0, 0.0, 0.0])
	w[0] = max(w[0], err)
	w[1] = max(w[1], d)
	w[2] = max(w[2], rel)
	return err


def close(fn, got, ref, what, tol=TOL):
	"""got (an SQL result) against ref (a float64, NaN meaning NULL), relative-or-absolute."""
	if ref is None or (isinstance(ref, float) and np.isnan(ref)):
		return check(got is None, f'{fn} {what}: got {got!r}, want NULL')
	if not isinstance(got, float):
		return check(False, f'{fn} {what}: got {got!r}, want {ref!r}')
	if np.isinf(ref):
		return check(got == ref, f'{fn} {what}: got {got!r}, want {ref!r}')
	err = note_diff(fn, got, ref)
	return check(err <= tol, f'{fn} {what}: got {got!r}, want {ref!r} (err {err:.3g} > {tol:g})')


def blob(z):
	return np.asarray(z, F32).tobytes()


def connect(build):
	con = sqlite3.connect(':memory:')
	con.enable_load_extension(True)
	con.load_extension(os.path.join(build, 'bvtool_sql'))
	return con


def one(con, sql, *args):
	return con.execute(sql, args).fetchone()[0]


def sql_error(con, sql, args, fn, part, what, exc=sqlite3.OperationalError):
	"""The statement must fail with an SQL error (exc: OperationalError for SQLITE_ERROR)
	starting with fn and holding part."""
	try:
		r = con.execute(sql, args).fetchall()
	except sqlite3.DatabaseError as e:
		msg = str(e)
		return check(type(e) is exc and msg.startswith(fn + ':') and part in msg,
			     f'{what}: {type(e).__name__} {msg!r}, want {exc.__name__} starting with {fn!r} '
			     f'and holding {part!r}')
	return check(False, f'{what}: no error, got {r!r} (want "{fn}: ...{part}...")')


# ---- NumPy references (float64 from the float32 logits) -------------------

def lsm(z, t=1.0):
	x = np.asarray(z, F32).astype(np.float64) / t
	m = x.max()
	return x - (m + np.log(np.sum(np.exp(x - m))))


def ref_argmax(z):
	z = np.asarray(z, F32)
	best = None
	for c, v in enumerate(z):
		if not np.isnan(v) and (best is None or v > z[best]):
			best = c
	return best


def ref_entropy(z, t):
	lp = lsm(z, t)
	return float(-np.sum(np.exp(lp) * lp))


def ref_kl(zp, zq, t):
	lp, lq = lsm(zp, t), lsm(zq, t)
	return float(np.sum(np.exp(lp) * (lp - lq)))


def ref_soft_ce(zt, zs, t):
	return float(-np.sum(np.exp(lsm(zt, t)) * lsm(zs, t)))


def ref_wsl(zs, zt, y):
	ces, cet = -lsm(zs)[y], -lsm(zt)[y]
	return float(1.0 - np.exp(-ces / (cet + 1e-7)))


def ref_decomp(rows, y):
	"""bias, variance, loss, log qbar of the replicas rows (B x K float32)."""
	l = np.mean([lsm(r) for r in rows], axis=0)
	m = l.max()
	log_z = m + np.log(np.sum(np.exp(l - m)))
	bias = log_z - l[y] if y is not None else float('nan')
	loss = -l[y] if y is not None else float('nan')
	return float(bias), float(-log_z), float(loss), l - log_z


# ---- the logits of the edge cases -----------------------------------------

def cases():
	rng = np.random.default_rng(20261202)
	c = {
		'pm80': rng.choice([-80.0, 80.0], 10),
		'pm80_one_top': np.array([80, -80, -80, -80, -80, -80, -80, -80], float),
		'k1': np.array([3.25]),
		'k1_neg80': np.array([-80.0]),
		'equal': np.full(10, 7.5),
		'equal_k1000': np.full(1000, -2.0),
		'normal': rng.standard_normal(10),
		'normal_b': 3 * rng.standard_normal(10),
		'normal_k1000': rng.standard_normal(1000),
		'normal_k1000_b': 5 * rng.standard_normal(1000),
		'mixed': np.array([1e30, -1e30, 1e-30, 0.0, 3.0, -7e-38, 80.0, -80.0, 1e-45, 2.5e10]),
		'mixed_b': np.array([-1e30, 1e-30, 1e30, 5.0, 0.0, 1e-20, -80.0, 80.0, 6e-39, -2.5e10]),
		'mixed_k1000': np.where(rng.random(1000) < 0.1, 1e4 * rng.standard_normal(1000),
					1e-3 * rng.standard_normal(1000)),
	}
	return {k: np.asarray(v, F32) for k, v in c.items()}


TEMPS = [1.0, 0.1, 100.0, 2.5]


def class_list(k):
	return list(range(k)) if k <= 10 else [0, 1, 17, 499, k - 1]


# ---- scalars -----------------------------------------------------------------

def test_scalars(con):
	cs = cases()
	for name, z in cs.items():
		b, k = blob(z), len(z)
		check(one(con, 'SELECT bv_nclasses(?)', b) == k, f'bv_nclasses {name}')
		got = one(con, 'SELECT bv_argmax(?)', b)
		check(got == ref_argmax(z), f'bv_argmax {name}: got {got}, want {ref_argmax(z)}')
		for c in class_list(k):
			got = one(con, 'SELECT bv_logit(?, ?)', b, c)
			check(got == float(z[c]), f'bv_logit {name} c={c}: got {got!r}, want {float(z[c])!r}')
		for t in TEMPS:
			lp = lsm(z, t)
			for c in class_list(k):
				w = f'{name} c={c} T={t}'
				close('bv_log_softmax', one(con, 'SELECT bv_log_softmax(?, ?, ?)', b, c, t), float(lp[c]), w)
				close('bv_softmax', one(con, 'SELECT bv_softmax(?, ?, ?)', b, c, t), float(np.exp(lp[c])), w)
				close('bv_ce', one(con, 'SELECT bv_ce(?, ?, ?)', b, c, t), float(-lp[c]), w)
			close('bv_entropy', one(con, 'SELECT bv_entropy(?, ?)', b, t), ref_entropy(z, t), f'{name} T={t}')
		# the optional T is 1
		lp = lsm(z)
		for c in class_list(k)[:3]:
			close('bv_log_softmax', one(con, 'SELECT bv_log_softmax(?, ?)', b, c), float(lp[c]), f'{name} c={c} no T')
			close('bv_softmax', one(con, 'SELECT bv_softmax(?, ?)', b, c), float(np.exp(lp[c])), f'{name} c={c} no T')
			close('bv_ce', one(con, 'SELECT bv_ce(?, ?)', b, c), float(-lp[c]), f'{name} c={c} no T')
		close('bv_entropy', one(con, 'SELECT bv_entropy(?)', b), ref_entropy(z, 1.0), f'{name} no T')
	# pairs of one K
	by_k = {}
	for name, z in cs.items():
		by_k.setdefault(len(z), []).append((name, z))
	for k, group in by_k.items():
		for n1, z1 in group:
			for n2, z2 in group:
				b1, b2 = blob(z1), blob(z2)
				for t in TEMPS:
					w = f'{n1} | {n2} T={t}'
					close('bv_kl', one(con, 'SELECT bv_kl(?, ?, ?)', b1, b2, t), ref_kl(z1, z2, t), w)
					close('bv_soft_ce', one(con, 'SELECT bv_soft_ce(?, ?, ?)', b1, b2, t), ref_soft_ce(z1, z2, t), w)
				close('bv_kl', one(con, 'SELECT bv_kl(?, ?)', b1, b2), ref_kl(z1, z2, 1.0), f'{n1} | {n2} no T')
				close('bv_soft_ce', one(con, 'SELECT bv_soft_ce(?, ?)', b1, b2), ref_soft_ce(z1, z2, 1.0), f'{n1} | {n2} no T')
				for y in class_list(k)[:4]:
					close('bv_wsl_weight', one(con, 'SELECT bv_wsl_weight(?, ?, ?)', b1, b2, y),
					      ref_wsl(z1, z2, y), f'{n1} | {n2} y={y}')
	# a class given as a whole REAL is that class; out of range or NULL gives NULL
	z = cs['normal']
	b = blob(z)
	close('bv_ce', one(con, 'SELECT bv_ce(?, 3.0)', b), float(-lsm(z)[3]), 'class 3.0')
	check(one(con, 'SELECT bv_logit(?, 2.0)', b) == float(z[2]), 'bv_logit class 2.0')
	for c in [None, -1, 10, 11, 2 ** 40, -2 ** 62, -1.0, 10.0]:
		for sql in ['SELECT bv_logit(?, ?)', 'SELECT bv_softmax(?, ?)', 'SELECT bv_log_softmax(?, ?, 2)',
			    'SELECT bv_ce(?, ?)']:
			got = one(con, sql, b, c)
			check(got is None, f'{sql} class {c!r}: got {got!r}, want NULL')
		got = one(con, 'SELECT bv_wsl_weight(?, ?, ?)', b, b, c)
		check(got is None, f'bv_wsl_weight class {c!r}: got {got!r}, want NULL')
	# an integral REAL too large to be a class is out of range, not "a fraction"
	for c in [1e16, 1e300]:
		try:
			got = one(con, 'SELECT bv_ce(?, ?)', b, c)
			check(got is None, f'bv_ce class {c!r}: got {got!r}, want NULL (out of range)')
		except sqlite3.OperationalError as e:
			check(False, f'bv_ce class {c!r} (a whole REAL out of range): error {str(e)!r}, want NULL')
	# argmax: the first of equal maxima; NaN passed over; all NaN: NULL
	for z, want in [([1, 3, 3, 2], 1), ([np.nan, 1, 3, np.nan, 3], 2), ([np.nan, np.nan], None),
			([-np.inf, -np.inf], 0), ([np.nan, -np.inf], 1), ([0.0, -0.0], 0), ([-0.0, 0.0], 0),
			([-1, np.inf, np.inf], 1), ([np.nan], None)]:
		got = one(con, 'SELECT bv_argmax(?)', blob(z))
		check(got == want, f'bv_argmax {z}: got {got!r}, want {want!r}')
	# an unaligned copy of the BLOB (substr of a longer one) reads the same logits
	z = cs['normal_k1000']
	got = one(con, 'SELECT bv_ce(substr(?, 2), 5)', b'\0' + blob(z))
	close('bv_ce', got, float(-lsm(z)[5]), 'K=1000 from substr')


def test_scalar_errors(con):
	z10, z4 = blob(np.arange(10)), blob(np.arange(4))
	bad = [(None, 'argument {a} is NULL, not a logits BLOB'), ('abc', 'argument {a} is TEXT, not a logits BLOB'),
	       (3, 'argument {a} is an INTEGER, not a logits BLOB'), (1.5, 'argument {a} is a REAL, not a logits BLOB'),
	       (b'\0\0\0', 'argument {a} is a BLOB of 3 bytes, not a multiple of 4'),
	       (b'\0' * 41, 'argument {a} is a BLOB of 41 bytes, not a multiple of 4')]
	empty = (b'', 'argument {a} is an empty BLOB')
	calls = [('bv_nclasses', 'bv_nclasses(?)', 1), ('bv_argmax', 'bv_argmax(?)', 1),
		 ('bv_logit', 'bv_logit(?, 0)', 1), ('bv_softmax', 'bv_softmax(?, 0)', 1),
		 ('bv_softmax', 'bv_softmax(?, 0, 2)', 1), ('bv_log_softmax', 'bv_log_softmax(?, 0)', 1),
		 ('bv_log_softmax', 'bv_log_softmax(?, 0, 2)', 1), ('bv_ce', 'bv_ce(?, 0)', 1),
		 ('bv_ce', 'bv_ce(?, 0, 2)', 1), ('bv_entropy', 'bv_entropy(?)', 1),
		 ('bv_entropy', 'bv_entropy(?, 2)', 1), ('bv_kl', 'bv_kl(?, :o)', 1), ('bv_kl', 'bv_kl(:o, ?)', 2),
		 ('bv_kl', 'bv_kl(?, :o, 2)', 1), ('bv_soft_ce', 'bv_soft_ce(?, :o)', 1),
		 ('bv_soft_ce', 'bv_soft_ce(:o, ?, 2)', 2), ('bv_wsl_weight', 'bv_wsl_weight(?, :o, 0)', 1),
		 ('bv_wsl_weight', 'bv_wsl_weight(:o, ?, 0)', 2), ('bv_logits_json', 'bv_logits_json(?)', 1),
		 ('bv_bias', 'bv_bias(?, 0)', 1), ('bv_variance', 'bv_variance(?)', 1),
		 ('bv_loss', 'bv_loss(?, 0)', 1), ('bv_geomean', 'bv_geomean(?)', 1)]
	for fn, expr, a in calls:
		sql = 'SELECT ' + expr.replace('?', ':v')
		for v, part in bad + ([] if fn in ('bv_nclasses', 'bv_logits_json') else [empty]):
			sql_error(con, sql, {'v': v, 'o': z10}, fn, part.format(a=a), f'{expr} with {v!r}')
	check(one(con, 'SELECT bv_nclasses(x\'\')') == 0, 'bv_nclasses of an empty BLOB is 0')
	check(one(con, 'SELECT bv_logits_json(x\'\')') == '[]', 'bv_logits_json of an empty BLOB is []')
	# temperatures
	t_calls = [('bv_softmax', 'bv_softmax(:z, 0, :t)', 3), ('bv_log_softmax', 'bv_log_softmax(:z, 0, :t)', 3),
		   ('bv_ce', 'bv_ce(:z, 0, :t)', 3), ('bv_entropy', 'bv_entropy(:z, :t)', 2),
		   ('bv_kl', 'bv_kl(:z, :z, :t)', 3), ('bv_soft_ce', 'bv_soft_ce(:z, :z, :t)', 3)]
	for fn, expr, a in t_calls:
		for t, part in [(0, 'is 0; it must be finite and > 0'), (0.0, 'is 0; it must be finite and > 0'),
				(-1, 'is -1; it must be finite and > 0'), (-0.5, 'is -0.5;'),
				(float('inf'), 'is inf;'), (float('-inf'), 'is -inf;'),
				(None, 'is NULL, not a number'), ('abc', 'is TEXT, not a number'),
				('2', 'is TEXT, not a number'), (b'\0\0\0\0', 'is a BLOB, not a number')]:
			sql_error(con, 'SELECT ' + expr, {'z': z10, 't': t}, fn,
				  f'argument {a} (the temperature) {part}', f'{expr} T={t!r}')
	# classes
	c_calls = [('bv_logit', 'bv_logit(:z, :c)', 2), ('bv_softmax', 'bv_softmax(:z, :c)', 2),
		   ('bv_log_softmax', 'bv_log_softmax(:z, :c, 2)', 2), ('bv_ce', 'bv_ce(:z, :c)', 2),
		   ('bv_wsl_weight', 'bv_wsl_weight(:z, :z, :c)', 3)]
	for fn, expr, a in c_calls:
		for c, part in [(1.5, 'a REAL with a fraction, not a class index'),
				(-0.25, 'a REAL with a fraction, not a class index'),
				('1', 'TEXT, not a class index'), ('abc', 'TEXT, not a class index'),
				(b'\1\0\0\0', 'a BLOB, not a class index')]:
			sql_error(con, 'SELECT ' + expr, {'z': z10, 'c': c}, fn, f'argument {a} is {part}', f'{expr} c={c!r}')
	# two BLOBs of different K
	for fn, expr in [('bv_kl', 'bv_kl(?, ?)'), ('bv_kl', 'bv_kl(?, ?, 3)'), ('bv_soft_ce', 'bv_soft_ce(?, ?)'),
			 ('bv_wsl_weight', 'bv_wsl_weight(?, ?, 0)')]:
		sql_error(con, 'SELECT ' + expr, (z10, z4), fn, 'the two logits BLOBs have 10 and 4 classes', expr + ' K 10, 4')
		sql_error(con, 'SELECT ' + expr, (z4, z10), fn, 'the two logits BLOBs have 4 and 10 classes', expr + ' K 4, 10')


# ---- JSON ----------------------------------------------------------------------

def nearest_f32(s):
	"""The float32 nearest the decimal s (ties to even), exactly (through Fraction)."""
	q = Fraction(s)
	if q == 0:
		return np.float32(-0.0 if s.lstrip().startswith('-') else 0.0)
	f = np.float32(float(q))
	best = None
	with np.errstate(over='ignore'):
		near = (np.nextafter(f, np.float32(-np.inf)), f, np.nextafter(f, np.float32(np.inf)))
	for g in near:
		if not np.isfinite(g):
			continue
		d = abs(Fraction(float(g)) - q)
		key = (d, int(np.asarray(g, F32).view('<u4')) & 1)
		if best is None or key < best[0]:
			best = (key, g)
	return best[1]


def sig_digits(s):
	mant = s.lstrip('-').split('e')[0].replace('.', '').lstrip('0')
	return len(mant.rstrip('0')) or 1


def test_json(con, build):
	rng = np.random.default_rng(7)
	# random bit patterns: every exponent, subnormals, both signs
	bits = rng.integers(0, 2 ** 32, 60000, dtype=np.uint64).astype('<u4')
	bits = np.concatenate([bits, rng.integers(1, 2 ** 23, 3000, dtype=np.uint64).astype('<u4'),  # subnormals
			       (rng.integers(1, 2 ** 23, 3000, dtype=np.uint64) | 2 ** 31).astype('<u4')])
	f = bits.view(F32)
	f = f[np.isfinite(f)]
	special = np.array([0.0, -0.0, 1e38, -1e38, 3.4028235e38, -3.4028235e38, 1.17549435e-38, 1e-45,
			    -1e-45, 1.4e-45, 5e-324, 0.1, 1.0, 2.0, 1.0 / 3, 16777216.0, 16777217.0, 1e10,
			    -1.23836095e-20, 9.99999944e-39], F32)
	f = np.concatenate([special, f]).astype(F32)
	bad_trip = bad_round = 0
	bad_short = {'normal': 0, 'subnormal': 0}
	shown = 0
	# K <= 3 per row: a row of long numbers overflows bv_logits_json's buffer for larger K
	# (checked in a child process below)
	for k in (1, 3):
		for r in range(0, len(f) - k + 1, k * (1 if k == 1 else 7)):
			z = f[r:r + k]
			b = z.tobytes()
			txt = one(con, 'SELECT bv_logits_json(?)', b)
			back = one(con, 'SELECT bv_logits(bv_logits_json(?))', b)
			if back != b:
				bad_trip += 1
				if shown < 5:
					shown += 1
					print(f'  round trip of {z!r}: {txt!r} -> {np.frombuffer(back, F32)!r}')
			if k == 1:
				s = txt[1:-1]
				if nearest_f32(s).tobytes() != b:
					bad_round += 1
				want = sig_digits(np.format_float_scientific(z[0], unique=True))
				if sig_digits(s) != want:
					kind = 'subnormal' if abs(z[0]) < np.finfo(np.float32).tiny else 'normal'
					bad_short[kind] += 1
					if bad_short[kind] <= 3:
						print(f'  {z[0]!r} ({kind}) written {s!r}: {sig_digits(s)} digits, '
						      f'shortest {want}')
	check(bad_trip == 0, f'bv_logits(bv_logits_json(z)) != z bytewise for {bad_trip} rows of {len(f)} floats')
	check(bad_round == 0, f'bv_logits_json: {bad_round} numbers do not read back (correctly rounded) as their float')
	n_sub = int(np.sum((np.abs(f) < np.finfo(np.float32).tiny) & (f != 0)))
	for kind in ('normal', 'subnormal'):
		check(bad_short[kind] == 0, f'bv_logits_json: {bad_short[kind]} {kind} numbers (of '
		      f'{n_sub if kind == "subnormal" else len(f) - n_sub}) have more digits than the shortest '
		      f'round trip (NumPy\'s repr)')
	# -0.0 is written "-0" and reads back as -0.0 (its sign kept)
	check(one(con, 'SELECT bv_logits_json(?)', blob([-0.0])) == '[-0]', 'bv_logits_json(-0.0) is [-0]')
	check(one(con, 'SELECT hex(bv_logits(\'[-0]\'))') == '00000080', 'bv_logits([-0]) is -0.0')
	check(one(con, 'SELECT hex(bv_logits(\'[-0.0]\'))') == '00000080', 'bv_logits([-0.0]) is -0.0')
	# the format: "[a, b]", integers without a point
	got = one(con, 'SELECT bv_logits_json(?)', blob([1, 2, 0.1, -3.5, 1e38]))
	check(got == '[1, 2, 0.1, -3.5, 1e+38]', f'bv_logits_json format: {got!r}')
	# non-finite -> null -> NaN
	got = one(con, 'SELECT bv_logits_json(?)', blob([np.nan, np.inf, -np.inf, 1]))
	check(got == '[null, null, null, 1]', f'bv_logits_json of NaN, inf, -inf: {got!r}')
	back = np.frombuffer(one(con, 'SELECT bv_logits(\'[null, 1, null]\')'), F32)
	check(len(back) == 3 and np.isnan(back[0]) and np.isnan(back[2]) and back[1] == 1,
	      f'bv_logits null -> NaN: {back!r}')
	z = np.array([np.nan, 2.5, np.nan], F32)
	back = np.frombuffer(one(con, 'SELECT bv_logits(bv_logits_json(?))', z.tobytes()), F32)
	check(np.array_equal(np.isnan(back), np.isnan(z)) and back[1] == 2.5, f'NaN round trip: {back!r}')
	# K = 1000 of normal logits: round trip through a long text
	for s in range(3):
		z = (rng.standard_normal(1000) * 10 ** s).astype(F32)
		check(one(con, 'SELECT bv_logits(bv_logits_json(?))', z.tobytes()) == z.tobytes(),
		      f'K=1000 round trip (scale 1e{s})')
	# parsing
	check(one(con, 'SELECT bv_logits(\'[]\')') == b'', 'bv_logits([]) is an empty BLOB')
	check(one(con, 'SELECT bv_logits(\'[1, 2, -3]\')') == blob([1, 2, -3]), 'bv_logits of integers')
	check(one(con, 'SELECT bv_logits(\' [ 1e-3 ,2.5E2 ] \')') == blob([1e-3, 250]), 'bv_logits with spaces, exponents')
	check(one(con, 'SELECT bv_logits(\'[1e-50]\')') == blob([0.0]), 'bv_logits underflow to 0')
	check(one(con, 'SELECT bv_logits(\'[3.4028235e38]\')') == blob([3.4028235e38]), 'bv_logits FLT_MAX')
	for txt, part in [('[1, 2', 'not JSON at character'), ('hello', 'not JSON at character'),
			  ('[1] x', 'not JSON at character'), ('[NaN]', 'not JSON at character'),
			  ('{"a": 1}', 'the JSON is not an array of numbers'),
			  ('[1, "a"]', 'element 1 is not a number'), ('[[1]]', 'element 0 is not a number'),
			  ('[true]', 'element 0 is not a number'), ('[0, 0, {}]', 'element 2 is not a number'),
			  ('[1e39]', 'element 0 (1e+39) is out of float32\'s range'),
			  ('[1, -3.5e38]', 'element 1 (-3.5e+38) is out of float32\'s range')]:
		sql_error(con, 'SELECT bv_logits(?)', (txt,), 'bv_logits', part, f'bv_logits({txt!r})')
	for v in ['3', '"[1]"']:  # valid JSON that is not an array
		try:
			con.execute('SELECT bv_logits(?)', (v,)).fetchall()
			check(False, f'bv_logits({v!r}): no error')
		except sqlite3.OperationalError as e:
			check(str(e).startswith('bv_logits: ') and ('not an array' in str(e) or 'not JSON' in str(e)),
			      f'bv_logits({v!r}): message {str(e)!r}')
	for v in [None, 3, b'[1]']:
		sql_error(con, 'SELECT bv_logits(?)', (v,), 'bv_logits', 'argument 1 is not TEXT', f'bv_logits({v!r})')
	# long numbers at K = 1000 ("-1.23836095e-20, " is 17 bytes), in a child process: a
	# buffer overflow aborts it
	child = ('import sqlite3, sys, numpy as np\n'
		 'con = sqlite3.connect(":memory:"); con.enable_load_extension(True)\n'
		 'con.load_extension(sys.argv[1])\n'
		 'for k in (4, 10, 1000, 20000):\n'
		 '    z = np.full(k, -1.23836095e-20, "<f4")\n'
		 '    s = con.execute("SELECT bv_logits_json(?)", (z.tobytes(),)).fetchone()[0]\n'
		 '    want = "[" + ", ".join(["-1.23836095e-20"] * k) + "]"\n'
		 '    assert s == want, (k, s[:60])\n'
		 '    assert con.execute("SELECT bv_logits(?)", (s,)).fetchone()[0] == z.tobytes(), k\n'
		 'print("ok")\n')
	p = subprocess.run([sys.executable, '-c', child, os.path.join(build, 'bvtool_sql')],
			   capture_output=True, text=True, timeout=60)
	check(p.returncode == 0 and p.stdout.strip() == 'ok',
	      f'bv_logits_json of K=1000 15-character numbers: child exit {p.returncode} '
	      f'({(p.stderr.strip().splitlines() or [""])[-1]!r})')


# ---- aggregates ------------------------------------------------------------------

def agg_check(tag, got, rows, y):
	"""got = (bias, variance, loss, geomean BLOB) of the group rows against NumPy."""
	bias, var, loss, lq = ref_decomp(rows, y)
	close('bv_bias', got[0], bias, tag)
	close('bv_variance', got[1], var, tag)
	close('bv_loss', got[2], loss, tag)
	if y is not None and got[0] is not None and got[1] is not None and got[2] is not None:
		d = abs(got[2] - (got[0] + got[1]))
		note_diff('loss - bias - variance', got[2], got[0] + got[1])
		check(d <= TOL * max(1.0, abs(got[2])), f'{tag}: loss - (bias + variance) = {d:.3g}')
	if got[3] is None:
		return check(False, f'bv_geomean {tag}: NULL')
	g = np.frombuffer(got[3], F32).astype(np.float64)
	if not check(len(g) == len(lq), f'bv_geomean {tag}: {len(g)} classes, want {len(lq)}'):
		return
	ulp = np.spacing(np.abs(lq.astype(F32))).astype(np.float64)
	err = np.abs(g - lq) / np.maximum(ulp, np.finfo(np.float32).smallest_subnormal)
	w = worst.setdefault('bv_geomean (float32 ulps)', [0.0, 0.0, 0.0])
	w[0] = max(w[0], float(err.max()))
	w[1] = max(w[1], float(np.abs(g - lq).max()))
	check(err.max() <= 1.0, f'bv_geomean {tag}: {err.max():.3g} float32 ulps from NumPy')


AGG_SQL = 'SELECT bv_bias(z, y), bv_variance(z), bv_loss(z, y), bv_geomean(z) FROM t'


def test_aggregates(con):
	rng = np.random.default_rng(99)
	con.execute('CREATE TABLE t(sample INTEGER, z BLOB, y INTEGER)')
	for k in (1, 10, 1000):
		for b in (1, 2, 16):
			kinds = {
				'normal': lambda: rng.standard_normal(k) * 2,
				'pm80': lambda: rng.choice([-80.0, 80.0], k),
				'mixed': lambda: np.where(rng.random(k) < 0.2, 1e3 * rng.standard_normal(k),
							  1e-3 * rng.standard_normal(k)),
				'equal': lambda: np.full(k, 4.0),
			}
			groups = []
			for kind, gen in kinds.items():
				for rep in range(2):
					rows = np.array([gen() for _ in range(b)], F32)
					groups.append((f'{kind}#{rep}', rows, int(rng.integers(0, k))))
			con.execute('DELETE FROM t')
			con.executemany('INSERT INTO t VALUES (?, ?, ?)',
					[(s, r.tobytes(), y) for s, (_, rows, y) in enumerate(groups) for r in rows])
			# by GROUP BY, the rows of the groups interleaved in the table's order too
			got = con.execute(AGG_SQL.replace('bv_bias', 'sample, bv_bias') +
					  ' GROUP BY sample ORDER BY sample').fetchall()
			check(len(got) == len(groups), f'GROUP BY K={k} B={b}: {len(got)} groups')
			for (s, *g), (kind, rows, y) in zip(got, groups):
				agg_check(f'GROUP BY K={k} B={b} {kind}', g, rows, y)
			# one group: the whole table of one sample
			kind, rows, y = groups[0]
			one_grp = con.execute(AGG_SQL + ' WHERE sample = 0').fetchone()
			agg_check(f'one group K={k} B={b} {kind}', one_grp, rows, y)
			# each aggregate alone gives the same bits as all four together (the cache of
			# the last row's log-softmax is shared)
			alone = [one(con, f'SELECT {e} FROM t WHERE sample = 0') for e in
				 ('bv_bias(z, y)', 'bv_variance(z)', 'bv_loss(z, y)', 'bv_geomean(z)')]
			check(list(one_grp) == alone, f'K={k} B={b}: aggregates alone differ from together')
	# a shuffled table: GROUP BY sorts, the groups' sums in another order
	con.execute('DELETE FROM t')
	groups = [(np.array(rng.standard_normal((16, 10)), F32), int(rng.integers(0, 10))) for _ in range(20)]
	ins = [(s, r.tobytes(), y) for s, (rows, y) in enumerate(groups) for r in rows]
	rng.shuffle(ins)
	con.executemany('INSERT INTO t VALUES (?, ?, ?)', ins)
	for s, *g in con.execute(AGG_SQL.replace('bv_bias', 'sample, bv_bias') + ' GROUP BY sample'):
		rows = np.array([np.frombuffer(z, F32) for ss, z, y in ins if ss == s])
		agg_check(f'shuffled GROUP BY sample {s}', g, rows, groups[s][1])
	# zero rows: NULL
	for e in ('bv_bias(z, y)', 'bv_variance(z)', 'bv_loss(z, y)', 'bv_geomean(z)'):
		got = one(con, f'SELECT {e} FROM t WHERE 0')
		check(got is None, f'{e} over zero rows: {got!r}')
	# label NULL or out of range: bias and loss NULL, variance and geomean still there
	rows = groups[0][0]
	for y in (None, -1, 10, 1000):
		con.execute('DROP TABLE IF EXISTS u')
		con.execute('CREATE TABLE u(z BLOB, y INTEGER)')
		con.executemany('INSERT INTO u VALUES (?, ?)', [(r.tobytes(), y) for r in rows])
		got = con.execute(AGG_SQL.replace(' t', ' u')).fetchone()
		check(got[0] is None and got[2] is None, f'bias, loss with label {y!r}: {got[:3]!r}')
		close('bv_variance', got[1], ref_decomp(rows, 0)[1], f'label {y!r}')
	# errors inside a group
	con.execute('DELETE FROM u')
	con.executemany('INSERT INTO u VALUES (?, ?)', [(blob(np.zeros(10)), 1), (blob(np.zeros(4)), 1)])
	for fn, e in [('bv_bias', 'bv_bias(z, y)'), ('bv_variance', 'bv_variance(z)'), ('bv_loss', 'bv_loss(z, y)'),
		      ('bv_geomean', 'bv_geomean(z)')]:
		sql_error(con, f'SELECT {e} FROM u', (), fn, 'the logits have 10 classes in one row and 4 in another',
			  f'{e} K 10 then 4')
	con.execute('DELETE FROM u')
	con.executemany('INSERT INTO u VALUES (?, ?)', [(blob(np.zeros(10)), 1), (blob(np.ones(10)), 2)])
	for fn in ('bv_bias', 'bv_loss'):
		sql_error(con, f'SELECT {fn}(z, y) FROM u', (), fn, 'the label changes inside one group (1, then 2)',
			  f'{fn} label 1 then 2')
	con.execute('UPDATE u SET y = NULL WHERE y = 2')
	for fn in ('bv_bias', 'bv_loss'):
		sql_error(con, f'SELECT {fn}(z, y) FROM u', (), fn, 'the label changes inside one group',
			  f'{fn} label 1 then NULL')
		sql_error(con, f'SELECT {fn}(z, 1.5) FROM u', (), fn, 'argument 2 is a REAL with a fraction',
			  f'{fn} label 1.5')
	got = one(con, 'SELECT bv_variance(z) FROM u')
	close('bv_variance', got, ref_decomp([np.zeros(10, F32), np.ones(10, F32)], 0)[1], 'labels ignored')


# ---- the virtual table bv_predictions ---------------------------------------------------

SCHEMA = '''
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  method TEXT NOT NULL CHECK(method IN ('teacher','ce','kd','wsl','kd-filter')),
  temperature REAL,
  alpha REAL,
  gamma REAL,
  seed INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending' CHECK(status IN ('pending','running','done','failed')),
  test_acc REAL,
  epochs INTEGER,
  model TEXT,
  checkpoint TEXT,
  seconds REAL,
  started_at TEXT,
  finished_at TEXT
);
CREATE UNIQUE INDEX runs_cell ON runs(method, IFNULL(temperature, -1), seed);
CREATE TABLE samples(
  split TEXT NOT NULL CHECK(split IN ('test','train')),
  sample_idx INTEGER NOT NULL,
  label INTEGER NOT NULL,
  PRIMARY KEY(split, sample_idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS "snapshots"(
  run_id INTEGER NOT NULL REFERENCES runs(id),
  epoch INTEGER NOT NULL,
  split TEXT NOT NULL,
  n INTEGER NOT NULL,
  k INTEGER NOT NULL,
  logits BLOB NOT NULL,
  UNIQUE(run_id, epoch, split)
);
CREATE VIEW predictions(run_id, epoch, split, sample_idx, logits) AS
  SELECT sn.run_id, sn.epoch, sn.split, s.sample_idx,
         substr(sn.logits, s.sample_idx * sn.k * 4 + 1, sn.k * 4)
  FROM snapshots sn JOIN samples s ON s.split = sn.split AND s.sample_idx < sn.n;
'''

RUNS = [1, 2, 3, 4]
EPOCHS = [5, 10]
N = {'test': 23, 'train': 17}
K = 10


def build_db(path, rng):
	if os.path.exists(path):
		os.remove(path)
	db = sqlite3.connect(path)
	db.executescript(SCHEMA)
	labels = {s: rng.integers(0, K, n) for s, n in N.items()}
	for r in RUNS:
		db.execute("INSERT INTO runs(id, method, temperature, seed, status) VALUES (?, 'ce', NULL, ?, 'done')",
			   (r, 100 + r))
	for s, lab in labels.items():
		db.executemany('INSERT INTO samples VALUES (?, ?, ?)', [(s, i, int(y)) for i, y in enumerate(lab)])
	snaps = {}
	# inserted out of order, so that the table's rowid order is not the rows' order
	keys = [(r, e, s) for r in RUNS for e in EPOCHS for s in N]
	rng.shuffle(keys)
	for r, e, s in keys:
		z = (rng.standard_normal((N[s], K)) * 3).astype(F32)
		snaps[(r, e, s)] = z
		db.execute('INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?)', (r, e, s, N[s], K, z.tobytes()))
	db.commit()
	return db, snaps, labels


def ref_rows(snaps, labels, pred=lambda r, e, s, i: True):
	out = []
	for (r, e, s), z in snaps.items():
		for i in range(len(z)):
			if pred(r, e, s, i):
				lab = labels.get(s)
				y = int(lab[i]) if lab is not None and i < len(lab) and lab[i] >= 0 else None
				out.append((r, e, s, i, z[i].tobytes(), y))
	return out


def order_key(row):
	"""(split, epoch, sample_idx, run_id): the order of bv_predictions by sample."""
	return (row[2], row[1], row[3], row[0])


def test_vtab(con, tmp):
	rng = np.random.default_rng(5)
	path = os.path.join(tmp, 'test_sqlfn_vtab.db')
	db, snaps, labels = build_db(path, rng)
	db.close()
	pcon = sqlite3.connect(path)
	pcon.enable_load_extension(True)
	pcon.load_extension(os.path.join(BUILD, 'bvtool_sql'))
	cols = 'run_id, epoch, split, sample_idx, logits, label'

	def rows(where='', args=()):
		return pcon.execute(f'SELECT {cols} FROM bv_predictions {where}', args).fetchall()

	allrows = ref_rows(snaps, labels)
	got = rows()
	check(sorted(got) == sorted(allrows), f'bv_predictions, no constraint: {len(got)} rows, want {len(allrows)}')
	got_star = pcon.execute('SELECT * FROM bv_predictions').fetchall()
	check(sorted(got_star) == sorted(allrows), 'SELECT * FROM bv_predictions: columns or rows differ')
	check(len(got) == sum(len(z) for z in snaps.values()), 'bv_predictions: one row per snapshot sample')
	# constraints, each against the same rows cut in NumPy
	cases = [
		('WHERE run_id = 2', (), lambda r, e, s, i: r == 2),
		('WHERE run_id = ?', (3,), lambda r, e, s, i: r == 3),
		('WHERE run_id = \'3\'', (), lambda r, e, s, i: r == 3),
		('WHERE run_id = 2.0', (), lambda r, e, s, i: r == 2),
		('WHERE run_id = 2.5', (), lambda r, e, s, i: False),
		('WHERE run_id = NULL', (), lambda r, e, s, i: False),
		('WHERE run_id = 99', (), lambda r, e, s, i: False),
		('WHERE run_id IN (1, 3)', (), lambda r, e, s, i: r in (1, 3)),
		('WHERE run_id IN (4, 1, 4)', (), lambda r, e, s, i: r in (1, 4)),
		('WHERE run_id IN (SELECT id FROM runs WHERE seed > 102)', (), lambda r, e, s, i: r in (3, 4)),
		('WHERE run_id IN ()', (), lambda r, e, s, i: False),
		('WHERE epoch = 10', (), lambda r, e, s, i: e == 10),
		('WHERE epoch IN (5, 7)', (), lambda r, e, s, i: e == 5),
		('WHERE split = \'train\'', (), lambda r, e, s, i: s == 'train'),
		('WHERE split IN (\'test\', \'nope\')', (), lambda r, e, s, i: s == 'test'),
		('WHERE split = ?', ('nope',), lambda r, e, s, i: False),
		('WHERE sample_idx = 3', (), lambda r, e, s, i: i == 3),
		('WHERE sample_idx = 3.0', (), lambda r, e, s, i: i == 3),
		('WHERE sample_idx = 2.5', (), lambda r, e, s, i: False),
		('WHERE sample_idx = -1', (), lambda r, e, s, i: False),
		('WHERE sample_idx = 20', (), lambda r, e, s, i: i == 20),
		('WHERE sample_idx < 4.5', (), lambda r, e, s, i: i < 4.5),
		('WHERE sample_idx < 4', (), lambda r, e, s, i: i < 4),
		('WHERE sample_idx < 0', (), lambda r, e, s, i: False),
		('WHERE sample_idx < 0.5', (), lambda r, e, s, i: i < 0.5),
		('WHERE sample_idx < -2.5', (), lambda r, e, s, i: False),
		('WHERE sample_idx <= 4', (), lambda r, e, s, i: i <= 4),
		('WHERE sample_idx <= 4.5', (), lambda r, e, s, i: i <= 4.5),
		('WHERE sample_idx <= -0.5', (), lambda r, e, s, i: False),
		('WHERE sample_idx > 15.5', (), lambda r, e, s, i: i > 15.5),
		('WHERE sample_idx > 15', (), lambda r, e, s, i: i > 15),
		('WHERE sample_idx > -1.5', (), lambda r, e, s, i: True),
		('WHERE sample_idx >= 20', (), lambda r, e, s, i: i >= 20),
		('WHERE sample_idx >= 19.25', (), lambda r, e, s, i: i >= 19.25),
		('WHERE sample_idx >= -3', (), lambda r, e, s, i: True),
		('WHERE sample_idx > 1e300', (), lambda r, e, s, i: False),
		('WHERE sample_idx < 1e300', (), lambda r, e, s, i: True),
		('WHERE sample_idx BETWEEN 2.5 AND 7', (), lambda r, e, s, i: 2.5 <= i <= 7),
		('WHERE sample_idx BETWEEN -3 AND 2', (), lambda r, e, s, i: -3 <= i <= 2),
		('WHERE sample_idx BETWEEN 16.5 AND 19.5', (), lambda r, e, s, i: 16.5 <= i <= 19.5),
		('WHERE sample_idx BETWEEN -5 AND -1', (), lambda r, e, s, i: False),
		('WHERE sample_idx BETWEEN 7 AND 3', (), lambda r, e, s, i: False),
		('WHERE sample_idx > 3 AND sample_idx < 9 AND sample_idx >= 5', (), lambda r, e, s, i: 5 <= i < 9),
		('WHERE sample_idx = ?', (None,), lambda r, e, s, i: False),
		('WHERE sample_idx IN (2, 18, 5)', (), lambda r, e, s, i: i in (2, 5, 18)),
		('WHERE run_id IN (1, 2) AND epoch = 5 AND split = \'test\' AND sample_idx BETWEEN 3 AND 6', (),
		 lambda r, e, s, i: r in (1, 2) and e == 5 and s == 'test' and 3 <= i <= 6),
		('WHERE label = 3', (), None),
		('WHERE logits = ?', (snaps[(2, 10, 'train')][4].tobytes(),), lambda r, e, s, i: (r, e, s, i) == (2, 10, 'train', 4)),
	]
	for where, args, pred in cases:
		if pred is None:
			want = [x for x in allrows if x[5] == 3]
		else:
			want = ref_rows(snaps, labels, pred)
		got = rows(where, args)
		check(sorted(got) == sorted(want), f'bv_predictions {where} {args}: {len(got)} rows, want {len(want)}')
	# orders: a full ORDER BY, and ORDER BY sample_idx where split and epoch are fixed
	want = sorted(allrows, key=order_key)
	got = rows('ORDER BY split, epoch, sample_idx, run_id')
	check(got == want, 'ORDER BY split, epoch, sample_idx, run_id')
	want = sorted(allrows, key=lambda x: x[:4])
	got = rows('ORDER BY run_id, epoch, split, sample_idx')
	check(got == want, 'ORDER BY run_id, epoch, split, sample_idx')
	for where, args, pred in [
		('WHERE split = \'test\' AND epoch = 10', (), lambda r, e, s, i: s == 'test' and e == 10),
		('WHERE run_id IN (1, 2, 4) AND split = ? AND epoch = ?', ('train', 5),
		 lambda r, e, s, i: r in (1, 2, 4) and s == 'train' and e == 5),
		('WHERE run_id IN (3, 1) AND split = ? AND epoch = ? AND sample_idx > 4.5', ('test', 5),
		 lambda r, e, s, i: r in (1, 3) and s == 'test' and e == 5 and i > 4.5)]:
		want = sorted(ref_rows(snaps, labels, pred), key=order_key)
		got = rows(where + ' ORDER BY sample_idx', args)
		check(got == want, f'{where} ORDER BY sample_idx: rows not in (sample_idx, run_id) order or differ')
		got = rows(where + ' ORDER BY sample_idx, run_id', args)
		check(got == want, f'{where} ORDER BY sample_idx, run_id')
	got = rows('ORDER BY sample_idx')
	check(sorted(got) == sorted(allrows) and [x[3] for x in got] == sorted(x[3] for x in got),
	      'ORDER BY sample_idx (nothing fixed): rows differ or not by sample_idx')
	got = rows('WHERE split = \'test\' ORDER BY epoch, sample_idx, run_id')
	check(got == sorted([x for x in allrows if x[2] == 'test'], key=order_key), 'split = test ORDER BY epoch, sample_idx, run_id')
	got = rows('ORDER BY sample_idx DESC, run_id DESC, epoch DESC, split DESC')
	check(got == sorted(allrows, key=lambda x: (x[3], x[0], x[1], x[2]), reverse=True), 'ORDER BY ... DESC')
	# every ORDER BY under every kind of constraint: the same rows, in the order asked for
	# (whether bv_predictions or SQLite's sorter provides it)
	colno = {'run_id': 0, 'epoch': 1, 'split': 2, 'sample_idx': 3, 'label': 5}
	wheres = [('', ()), ('WHERE split = ?', ('test',)), ('WHERE epoch = ?', (10,)),
		  ('WHERE split = ? AND epoch = ?', ('train', 5)), ('WHERE run_id = 2', ()),
		  ('WHERE run_id IN (1, 3)', ()), ('WHERE sample_idx = 4', ()), ('WHERE sample_idx IN (4, 2)', ()),
		  ("WHERE split IN ('test', 'train') AND epoch = 5", ()),
		  ('WHERE run_id IN (3, 1) AND epoch IN (10, 5) AND split = ?', ('test',))]
	orders = ['split', 'epoch', 'run_id', 'sample_idx', 'split, epoch', 'epoch, sample_idx',
		  'split, sample_idx', 'run_id, sample_idx', 'sample_idx, run_id', 'split, epoch, sample_idx',
		  'epoch, split', 'epoch, run_id', 'sample_idx, split', 'label, sample_idx', 'run_id, split']
	for where, args in wheres:
		base = sorted(rows(where, args))
		check(len(base) > 0, f'{where} {args}: no rows')
		for order in orders:
			got = rows(f'{where} ORDER BY {order}', args)
			keys = [tuple((-1 if x[colno[c]] is None else x[colno[c]]) for c in order.split(', ')) for x in got]
			check(sorted(got) == base and keys == sorted(keys), f'{where} {args} ORDER BY {order}: rows differ or out of order')
		grp = pcon.execute(f'SELECT sample_idx, count(*), group_concat(run_id) FROM bv_predictions {where} '
				   'GROUP BY sample_idx', args).fetchall()
		want = {}
		for x in base:
			want[x[3]] = want.get(x[3], 0) + 1
		check(sorted((g[0], g[1]) for g in grp) == sorted(want.items()),
		      f'{where} {args} GROUP BY sample_idx: groups {[(g[0], g[1]) for g in grp][:6]}...')
	# as the inner loop of joins (one xFilter per outer row)
	got = pcon.execute('SELECT count(*), sum(p.label = s.label) FROM samples s JOIN bv_predictions p '
			   'ON p.split = s.split AND p.sample_idx = s.sample_idx').fetchone()
	check(got == (len(allrows), len(allrows)), f'samples JOIN bv_predictions on split, sample_idx: {got}')
	got = pcon.execute('SELECT count(*) FROM runs r JOIN bv_predictions p ON p.run_id = r.id '
			   'WHERE r.seed IN (101, 104) AND p.epoch = 5').fetchone()[0]
	check(got == 2 * sum(N.values()), f'runs JOIN bv_predictions on run_id: {got}')
	got = rows('WHERE split = ? AND epoch = ? ORDER BY sample_idx LIMIT 5 OFFSET 3', ('test', 10))
	want = sorted([x for x in allrows if x[2] == 'test' and x[1] == 10], key=order_key)[3:8]
	check(got == want, 'ORDER BY sample_idx LIMIT 5 OFFSET 3')
	# GROUP BY sample_idx: its aggregates equal NumPy's, and no temporary B-tree
	gsql = ('SELECT sample_idx, count(*), bv_bias(logits, label), bv_variance(logits), bv_loss(logits, label), '
		'bv_geomean(logits) FROM bv_predictions WHERE run_id IN (1, 2, 3, 4) AND epoch = ? AND split = ? '
		'GROUP BY sample_idx')
	for e in EPOCHS:
		for s in N:
			got = pcon.execute(gsql, (e, s)).fetchall()
			check([g[0] for g in got] == list(range(N[s])), f'GROUP BY sample_idx e={e} {s}: groups {[g[0] for g in got]}')
			for g in got:
				i = g[0]
				reps = [snaps[(r, e, s)][i] for r in RUNS]
				check(g[1] == len(RUNS), f'GROUP BY e={e} {s} sample {i}: count {g[1]}')
				agg_check(f'bv_predictions GROUP BY e={e} {s} sample {i}', g[2:], reps, int(labels[s][i]))
			# through the predictions view (a sort, rows in another order): the same to 1e-12
			vsql = ('SELECT p.sample_idx, count(*), bv_bias(p.logits, l.label), bv_variance(p.logits), '
				'bv_loss(p.logits, l.label), bv_geomean(p.logits) FROM predictions p JOIN samples l '
				'ON l.split = p.split AND l.sample_idx = p.sample_idx WHERE p.run_id IN (1, 2, 3, 4) '
				'AND p.epoch = ? AND p.split = ? GROUP BY p.sample_idx ORDER BY p.sample_idx')
			vgot = pcon.execute(vsql, (e, s)).fetchall()
			check(len(vgot) == len(got), f'predictions view GROUP BY e={e} {s}: {len(vgot)} groups')
			for g, v in zip(got, vgot):
				check(g[:2] == v[:2], f'view vs vtab e={e} {s}: {g[:2]} vs {v[:2]}')
				for j, fn in ((2, 'bv_bias'), (3, 'bv_variance'), (4, 'bv_loss')):
					close(fn + ' (view vs vtab)', v[j], g[j], f'e={e} {s} sample {g[0]}')
	plan = pcon.execute('EXPLAIN QUERY PLAN ' + gsql, (10, 'test')).fetchall()
	text = ' | '.join(p[-1] for p in plan)
	check('TEMP B-TREE' not in text.upper(), f'EXPLAIN QUERY PLAN of GROUP BY sample_idx: {text}')
	check('bv_predictions' in text.lower() or 'VIRTUAL TABLE' in text.upper(), f'query plan: {text}')
	# GROUP BY without split and epoch fixed: SQLite sorts, the results the same
	got = pcon.execute('SELECT split, epoch, sample_idx, bv_loss(logits, label) FROM bv_predictions '
			   'WHERE run_id IN (2, 3) GROUP BY split, epoch, sample_idx').fetchall()
	check(len(got) == sum(N.values()) * len(EPOCHS), f'GROUP BY split, epoch, sample_idx: {len(got)} groups')
	for s, e, i, loss in got:
		close('bv_loss', loss, ref_decomp([snaps[(r, e, s)][i] for r in (2, 3)], int(labels[s][i]))[2],
		      f'bv_predictions GROUP BY split, epoch, sample_idx {s} {e} {i}')
	# the same rows as the predictions view (every sample has a samples row here)
	for where in ['', 'WHERE run_id IN (1, 3) AND epoch = 10', 'WHERE split = \'train\' AND sample_idx >= 3.5',
		      'WHERE sample_idx BETWEEN 2 AND 5.5']:
		v = pcon.execute(f'SELECT run_id, epoch, split, sample_idx, logits FROM predictions {where}').fetchall()
		t = pcon.execute(f'SELECT run_id, epoch, split, sample_idx, logits FROM bv_predictions {where}').fetchall()
		check(sorted(v) == sorted(t) and len(v) > 0, f'bv_predictions = predictions view {where}: {len(t)} vs {len(v)} rows')
	# constraints the table takes (and tells SQLite to omit) keep SQL's meaning: an INTEGER is
	# less than any TEXT or BLOB, a COLLATE applies, = NULL matches nothing
	for where in ["sample_idx < 'abc'", "sample_idx <= x'00'", "sample_idx > 'abc'",
		      "split = 'TEST' COLLATE NOCASE", "split IN ('Train') COLLATE NOCASE", "split = NULL"]:
		v = pcon.execute(f'SELECT count(*) FROM predictions WHERE {where}').fetchone()[0]
		t = pcon.execute(f'SELECT count(*) FROM bv_predictions WHERE {where}').fetchone()[0]
		check(v == t, f'bv_predictions WHERE {where}: {t} rows, the predictions view {v}')
	pcon.execute("INSERT INTO snapshots VALUES (1, 50, '', 2, 10, ?)", (bytes(80),))
	t = pcon.execute('SELECT count(*) FROM bv_predictions WHERE split = NULL').fetchone()[0]
	check(t == 0, f"bv_predictions WHERE split = NULL, a snapshot of split '': {t} rows, want 0")
	pcon.execute('DELETE FROM snapshots WHERE epoch = 50')
	pcon.commit()
	# labels: samples.label, NULL when the samples row is missing (the view has no such row)
	pcon.execute("DELETE FROM samples WHERE split = 'train' AND sample_idx IN (3, 16)")
	pcon.commit()
	lab2 = {s: v.copy() for s, v in labels.items()}
	lab2['train'][[3, 16]] = -1
	got = rows('WHERE split = \'train\'')
	want = ref_rows(snaps, lab2, lambda r, e, s, i: s == 'train')
	check(sorted(got, key=lambda x: x[:4]) == sorted(want, key=lambda x: x[:4]),
	      'label column with samples rows 3 and 16 of train missing')
	check(all(x[5] is None for x in got if x[3] in (3, 16)) and len(got) == len(RUNS) * len(EPOCHS) * N['train'],
	      'missing samples rows: rows kept, label NULL')
	got = pcon.execute('SELECT sample_idx, bv_bias(logits, label), bv_variance(logits) FROM bv_predictions '
			   'WHERE run_id IN (1, 2, 3, 4) AND epoch = 5 AND split = \'train\' GROUP BY sample_idx').fetchall()
	check(got[3][1] is None and got[3][2] is not None, f'bias NULL for a missing label: {got[3]}')
	# a snapshot of another split (no samples rows: label NULL) and a long split name
	z = rng.standard_normal((4, 3)).astype(F32)
	pcon.execute('INSERT INTO snapshots VALUES (1, 99, ?, 4, 3, ?)', ('validation_holdout', z.tobytes()))
	pcon.commit()
	got = rows('WHERE epoch = 99')
	want = [(1, 99, 'validation_holdout', i, z[i].tobytes(), None) for i in range(4)]
	check(got == want, f'snapshot of split validation_holdout: {[x[2:4] for x in got]}')
	got = rows('WHERE split = \'validation_holdout\'')
	check(got == want, f'split = validation_holdout: {len(got)} rows, want 4')
	pcon.execute('DELETE FROM snapshots WHERE epoch = 99')
	# a snapshot whose BLOB is not n x k x 4 bytes: an error naming the snapshot
	cur = pcon.execute('INSERT INTO snapshots VALUES (2, 7, \'test\', 5, 10, ?)', (b'\0' * 196,))
	bad = cur.lastrowid
	pcon.commit()
	sql_error(pcon, 'SELECT * FROM bv_predictions', (), 'bv_predictions',
		  f'snapshot {bad} holds 196 bytes, not n x k x 4 = 200', 'snapshot of the wrong size',
		  sqlite3.DatabaseError)  # SQLITE_CORRUPT
	sql_error(pcon, 'SELECT count(*) FROM bv_predictions WHERE epoch = 7', (), 'bv_predictions',
		  f'snapshot {bad}', 'snapshot of the wrong size, selected by epoch', sqlite3.DatabaseError)
	got = rows('WHERE run_id = 1')
	check(len(got) == len(EPOCHS) * sum(N.values()), 'the bad snapshot filtered out: no error')
	pcon.close()
	# a database without the snapshots table
	sql_error(con, 'SELECT * FROM bv_predictions', (), 'bv_predictions', 'no bvtool snapshots table',
		  'bv_predictions without snapshots')
	os.remove(path)


def test_vtab_chunks(tmp):
	"""Snapshots larger than bv_predictions' read buffer (16 MiB over the snapshots read side
	by side: 512 samples of K = 4096 for two, 1024 for one), and a shorter snapshot in the
	same (split, epoch) group: every row's logits as written."""
	rng = np.random.default_rng(11)
	path = os.path.join(tmp, 'test_sqlfn_chunks.db')
	if os.path.exists(path):
		os.remove(path)
	db = sqlite3.connect(path)
	db.executescript(SCHEMA)
	k, n = 4096, 1100
	db.executemany('INSERT INTO samples VALUES (?, ?, ?)', [('test', i, i % k) for i in range(n)])
	z = {}
	for r, nr in ((1, n), (2, n), (3, 7)):
		db.execute("INSERT INTO runs(id, method, seed, status) VALUES (?, 'ce', ?, 'done')", (r, r))
		z[r] = rng.standard_normal((nr, k)).astype(F32)
		db.execute("INSERT INTO snapshots VALUES (?, 1, 'test', ?, ?, ?)", (r, nr, k, z[r].tobytes()))
	db.commit()
	db.close()
	con = sqlite3.connect(path)
	con.enable_load_extension(True)
	con.load_extension(os.path.join(BUILD, 'bvtool_sql'))
	for where, pred in [("WHERE split = 'test' AND epoch = 1 ORDER BY sample_idx", lambda i: True),
			    ('', lambda i: True), ('WHERE run_id = 2', lambda i: True),
			    ("WHERE split = 'test' AND epoch = 1 AND sample_idx BETWEEN 300.5 AND 1000 "
			     'ORDER BY sample_idx', lambda i: 300.5 <= i <= 1000)]:
		got = con.execute(f'SELECT run_id, sample_idx, logits FROM bv_predictions {where}').fetchall()
		want = [(r, i) for r in z for i in range(len(z[r])) if pred(i) and ('run_id = 2' not in where or r == 2)]
		bad = sum(b != z[r][i].tobytes() for r, i, b in got)
		check(sorted((r, i) for r, i, b in got) == sorted(want) and bad == 0,
		      f'chunked reads {where}: {len(got)} rows (want {len(want)}), {bad} with wrong logits')
		if 'ORDER BY' in where:
			check([(i, r) for r, i, b in got] == sorted((i, r) for r, i, b in got), f'chunked reads {where}: order')
	got = con.execute('SELECT sample_idx, count(*), bv_loss(logits, label) FROM bv_predictions '
			  "WHERE run_id IN (1, 2, 3) AND epoch = 1 AND split = 'test' GROUP BY sample_idx").fetchall()
	check([(g[0], g[1]) for g in got] == [(i, 3 if i < 7 else 2) for i in range(n)],
	      'GROUP BY over snapshots of different n: groups or counts')
	for i in (0, 6, 7, 555, n - 1):
		close('bv_loss', got[i][2], ref_decomp([z[r][i] for r in z if i < len(z[r])], i % k)[2],
		      f'chunked GROUP BY sample {i}')
	con.close()
	os.remove(path)


BUILD = None


def main():
	global BUILD
	if len(sys.argv) != 2:
		sys.exit('usage: test_sqlfn.py BUILD_DIR')
	BUILD = sys.argv[1]
	con = connect(BUILD)
	tmp = os.environ.get('TMPDIR', '/tmp')
	for name, fn in [('scalars', lambda: test_scalars(con)), ('scalar errors', lambda: test_scalar_errors(con)),
			 ('json', lambda: test_json(con, BUILD)), ('aggregates', lambda: test_aggregates(con)),
			 ('bv_predictions', lambda: test_vtab(con, tmp)),
			 ('bv_predictions chunks', lambda: test_vtab_chunks(tmp))]:
		try:
			fn()
		except Exception as e:  # a crash of one part is a failure, not the end
			check(False, f'{name}: {type(e).__name__}: {e}')
	print(f'test_sqlfn: {n_checks} checks, {len(failures)} failed')
	print('largest difference per function (err = |got - ref| / max(1, |ref|), tolerance 1e-12; '
	      'bv_geomean in float32 ulps, tolerance 1):')
	for fn in sorted(worst):
		e, a, r = worst[fn]
		print(f'  {fn:34s} err {e:.3g}  abs {a:.3g}  rel {r:.3g}')
	sys.exit(1 if failures else 0)


if __name__ == '__main__':
	main()
