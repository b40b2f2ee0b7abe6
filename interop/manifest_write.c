/*
 * manifest.json written (bv_manifest_write) and two manifests compared
 * (bv_manifest_compare), with jansson. The writer is the inverse of
 * bv_manifest_parse (manifest.c), and reads its own text back before it writes
 * a byte, so that it never writes a manifest that would not parse to the
 * struct it was given; the comparison is that check's, and the tests'.
 */
#include "manifest_int.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

/* ---- comparing ---------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int differ(char *out, size_t size, const char *fmt,
							...)
{
	va_list ap;
	va_start(ap, fmt);
	if (size)
		vsnprintf(out, size, fmt, ap);
	va_end(ap);
	return 1;
}

/* the same double, bit for bit but for NaN's payload (-0 is not 0) */
static int same_real(double a, double b)
{
	return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

static int diff_real(char *out, size_t size, const char *k, double a, double b)
{
	return same_real(a, b) ? 0 : differ(out, size, "%s: %.17g vs %.17g", k, a, b);
}

static int diff_int(char *out, size_t size, const char *k, long long a, long long b)
{
	return a == b ? 0 : differ(out, size, "%s: %lld vs %lld", k, a, b);
}

static int diff_str(char *out, size_t size, const char *k, const char *a, const char *b)
{
	char sa[SHOW_MAX], sb[SHOW_MAX];
	if ((!a && !b) || (a && b && strcmp(a, b) == 0))
		return 0;
	return differ(out, size, "%s: %s vs %s", k,
		      a ? mf_show_text(sa, sizeof sa, a, strlen(a), SHOW_CHARS) : "(absent)",
		      b ? mf_show_text(sb, sizeof sb, b, strlen(b), SHOW_CHARS) : "(absent)");
}

/* extras as JSON values (NULL is no key): key order and spelling aside */
static int diff_extras(char *out, size_t size, const char *k, const char *a, const char *b)
{
	json_t *ja = json_loads(a ? a : "{}", 0, NULL), *jb = json_loads(b ? b : "{}", 0, NULL);
	const int same = ja && jb ? json_equal(ja, jb) : (!ja && !jb && strcmp(a, b) == 0);
	json_decref(ja);
	json_decref(jb);
	return same ? 0 : diff_str(out, size, k, a, b);
}

/* n values of a and b (NULL: all NAN) */
static int diff_reals(char *out, size_t size, const char *k, const double *a, const double *b,
		      int n)
{
	char ki[KEY_MAX];
	for (int i = 0; i < n; i++)
		if (diff_real(out, size, mf_key_at(ki, k, (size_t)i), a ? a[i] : NAN,
			      b ? b[i] : NAN))
			return 1;
	return 0;
}

static int diff_run(char *out, size_t size, const char *w, const bv_mf_run *a, const bv_mf_run *b)
{
	char k[KEY_MAX], ks[KEY_MAX], ki[KEY_MAX];
	if (diff_int(out, size, mf_key(k, w, "method"), a->method, b->method) ||
	    diff_real(out, size, mf_key(k, w, "temperature"), a->temperature, b->temperature) ||
	    diff_real(out, size, mf_key(k, w, "alpha"), a->alpha, b->alpha) ||
	    diff_real(out, size, mf_key(k, w, "gamma"), a->gamma, b->gamma) ||
	    diff_int(out, size, mf_key(k, w, "seed"), a->seed, b->seed) ||
	    /* init 0 (a run built without one) is written, and read back, as 1 */
	    diff_int(out, size, mf_key(k, w, "init"), a->init > 1 ? a->init : 1,
		     b->init > 1 ? b->init : 1) ||
	    diff_str(out, size, mf_key(k, w, "model"), a->model, b->model) ||
	    diff_int(out, size, mf_key(k, w, "n_epochs"), a->n_epochs, b->n_epochs))
		return 1;
	for (int i = 0; i < a->n_epochs; i++)
		if (diff_int(out, size, mf_key_at(ki, mf_key(k, w, "epochs"), (size_t)i),
			     a->epochs ? a->epochs[i] : -1, b->epochs ? b->epochs[i] : -1))
			return 1;
	if (diff_int(out, size, mf_key(k, w, "planned_epochs"), a->planned_epochs,
		     b->planned_epochs))
		return 1;
	for (int sp = 0; sp < BV_N_SPLITS; sp++) {
		const bv_mf_logits *la = &a->logits[sp], *lb = &b->logits[sp];
		mf_key(ks, mf_key(k, w, "logits"), bv_split_names[sp]);
		if (diff_int(out, size, ks, la->n_paths, lb->n_paths))
			return 1;
		for (int i = 0; i < la->n_paths; i++)
			if (diff_str(out, size, mf_key_at(ki, ks, (size_t)i),
				     la->paths ? la->paths[i] : NULL,
				     lb->paths ? lb->paths[i] : NULL))
				return 1;
	}
	if (diff_str(out, size, mf_key(k, w, "inbag"), a->inbag, b->inbag))
		return 1;
	mf_key(k, w, "test_acc");
	if (!a->test_acc != !b->test_acc)
		return differ(out, size, "%s: %s vs %s", k, a->test_acc ? "present" : "absent",
			      b->test_acc ? "present" : "absent");
	if (a->test_acc && diff_reals(out, size, k, a->test_acc, b->test_acc, a->n_epochs))
		return 1;
	const bv_mf_metrics *ma = &a->metrics, *mb = &b->metrics;
	mf_key(k, w, "metrics");
	if (diff_int(out, size, mf_key(ks, k, "n"), ma->n, mb->n))
		return 1;
	for (int i = 0; i < ma->n; i++)
		if (diff_int(out, size, mf_key_at(ki, mf_key(ks, k, "epoch"), (size_t)i),
			     ma->epoch ? ma->epoch[i] : -1, mb->epoch ? mb->epoch[i] : -1))
			return 1;
	for (int c = 0; c < N_METRICS; c++)
		if (diff_reals(out, size, mf_key(ks, k, mf_metric_names[c]), mf_metric_col_c(ma, c),
			       mf_metric_col_c(mb, c), ma->n))
			return 1;
	return diff_real(out, size, mf_key(k, w, "seconds"), a->seconds, b->seconds) ||
	       diff_extras(out, size, mf_key(k, w, "extras"), a->extras, b->extras);
}

int bv_manifest_compare(const bv_manifest *a, const bv_manifest *b, char *out, size_t size)
{
	char k[KEY_MAX];
	if (size)
		out[0] = '\0';
	if (diff_str(out, size, "dataset", a->dataset, b->dataset) ||
	    diff_int(out, size, "classes", a->classes, b->classes))
		return 1;
	for (int sp = 0; sp < BV_N_SPLITS; sp++)
		if (diff_str(out, size, mf_key(k, "labels", bv_split_names[sp]), a->labels[sp],
			     b->labels[sp]))
			return 1;
	if (diff_int(out, size, "has_teacher", !!a->has_teacher, !!b->has_teacher) ||
	    (a->has_teacher && diff_run(out, size, "teacher", &a->teacher, &b->teacher)) ||
	    diff_int(out, size, "n_runs", a->n_runs, b->n_runs))
		return 1;
	for (int i = 0; i < a->n_runs; i++)
		if (diff_run(out, size, mf_key_at(k, "runs", (size_t)i), &a->runs[i], &b->runs[i]))
			return 1;
	return diff_extras(out, size, "extras", a->extras, b->extras);
}

/* ---- writing ------------------------------------------------------------ */

static int write_nomem(const char *path)
{
	return bv_error_set(BV_ENOMEM, "out of memory writing '%s'", path);
}

/* o[name] = v (v NULL: out of memory) */
static int put(json_t *o, const char *name, json_t *v, const char *path)
{
	return v && json_object_set_new(o, name, v) == 0 ? 0 : write_nomem(path);
}

static int put_int(json_t *o, const char *name, long long x, const char *path)
{
	return put(o, name, json_integer(x), path);
}

/* a finite double; NAN is an absent key */
static int put_real(json_t *o, const char *name, double x, const char *path, const char *w)
{
	char k[KEY_MAX];
	if (isnan(x))
		return 0;
	if (!isfinite(x))
		return bv_error_set(BV_EINVAL, "cannot write '%s': %s: %g is not a JSON number",
				    path, mf_key(k, w, name), x);
	return put(o, name, json_real(x), path);
}

static int utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		int len;
		if (mf_utf8_next(p + i, n - i, &len) < 0)
			return 0;
		i += (size_t)len;
	}
	return 1;
}

static json_t *string_of(const char *s, const char *path, const char *k, int *rc)
{
	if (!utf8_valid(s)) {
		*rc = bv_error_set(BV_EINVAL, "cannot write '%s': %s: not UTF-8 text", path, k);
		return NULL;
	}
	json_t *v = json_string(s);
	if (!v)
		*rc = write_nomem(path);
	return v;
}

/* a string; NULL is an absent key */
static int put_str(json_t *o, const char *name, const char *s, const char *path, const char *w)
{
	char k[KEY_MAX];
	int rc = 0;
	if (!s)
		return 0;
	json_t *v = string_of(s, path, mf_key(k, w, name), &rc);
	return v ? put(o, name, v, path) : rc;
}

/* n doubles as a list, NAN as null */
static int put_reals(json_t *o, const char *name, const double *x, int n, const char *path,
		     const char *w)
{
	char k[KEY_MAX], ki[KEY_MAX];
	json_t *a = json_array();
	if (!a)
		return write_nomem(path);
	for (int i = 0; i < n; i++) {
		if (!isnan(x[i]) && !isfinite(x[i])) {
			json_decref(a);
			return bv_error_set(BV_EINVAL,
					    "cannot write '%s': %s: %g is not a JSON number", path,
					    mf_key_at(ki, mf_key(k, w, name), (size_t)i), x[i]);
		}
		if (json_array_append_new(a, isnan(x[i]) ? json_null() : json_real(x[i])) != 0) {
			json_decref(a);
			return write_nomem(path);
		}
	}
	return put(o, name, a, path);
}

static int put_ints(json_t *o, const char *name, const int *x, int n, const char *path)
{
	json_t *a = json_array();
	if (!a)
		return write_nomem(path);
	for (int i = 0; i < n; i++)
		if (json_array_append_new(a, json_integer(x[i])) != 0) {
			json_decref(a);
			return write_nomem(path);
		}
	return put(o, name, a, path);
}

/* extras' keys after the known ones; a key bvtool defines there is refused
 * (it would be read as that key, or refused) */
static int put_extras(json_t *o, const char *extras, const char *const *known,
		      const char *const *also, const char *path, const char *w)
{
	char k[KEY_MAX], s[SHOW_MAX];
	json_error_t err;
	const char *name;
	json_t *v;
	int rc = 0;
	if (!extras)
		return 0;
	mf_key(k, w, "extras");
	json_t *x = json_loads(extras, JSON_REJECT_DUPLICATES, &err);
	if (!json_is_object(x)) {
		json_decref(x);
		return bv_error_set(
			BV_EINVAL, "cannot write '%s': %s: not the text of a JSON object", path, k);
	}
	json_object_foreach (x, name, v) {
		if (mf_listed(known, name) || mf_listed(also, name) || json_object_get(o, name)) {
			rc = bv_error_set(
				BV_EINVAL,
				"cannot write '%s': %s: '%s' is a key bvtool writes itself", path,
				k, mf_show_text(s, sizeof s, name, strlen(name), SHOW_CHARS));
			break;
		}
		if (json_object_set(o, name, v) != 0) {
			rc = write_nomem(path);
			break;
		}
	}
	json_decref(x);
	return rc;
}

static int build_logits(json_t *o, const bv_mf_run *r, const char *path, const char *w)
{
	char k[KEY_MAX], ks[KEY_MAX], ki[KEY_MAX];
	int rc = 0;
	json_t *lo = json_object(), *v;
	if (!lo)
		return write_nomem(path);
	mf_key(k, w, "logits");
	for (int sp = 0; sp < BV_N_SPLITS && !rc; sp++) {
		const bv_mf_logits *lg = &r->logits[sp];
		mf_key(ks, k, bv_split_names[sp]);
		if (lg->n_paths <= 0)
			continue;
		for (int i = 0; i < lg->n_paths && !rc; i++)
			if (!lg->paths || !lg->paths[i])
				rc = bv_error_set(BV_EINVAL, "cannot write '%s': %s: no path given",
						  path, mf_key_at(ki, ks, (size_t)i));
		if (rc)
			break;
		/* one path: one (E, N, K) file (the teacher's (N, K) one) */
		if (lg->n_paths == 1) {
			rc = put_str(lo, bv_split_names[sp], lg->paths[0], path, k);
			continue;
		}
		if (!(v = json_array())) {
			rc = write_nomem(path);
			break;
		}
		for (int i = 0; i < lg->n_paths && !rc; i++) {
			json_t *p =
				string_of(lg->paths[i], path, mf_key_at(ki, ks, (size_t)i), &rc);
			if (p && json_array_append_new(v, p) != 0)
				rc = write_nomem(path);
		}
		if (rc)
			json_decref(v);
		else
			rc = put(lo, bv_split_names[sp], v, path);
	}
	if (rc) {
		json_decref(lo);
		return rc;
	}
	return put(o, "logits", lo, path);
}

static int build_metrics(json_t *o, const bv_mf_metrics *mt, const char *path, const char *w)
{
	char k[KEY_MAX];
	int rc;
	if (mt->n <= 0)
		return 0;
	mf_key(k, w, "metrics");
	if (!mt->epoch)
		return bv_error_set(BV_EINVAL, "cannot write '%s': %s: %d epochs, none given", path,
				    k, mt->n);
	json_t *x = json_object();
	if (!x)
		return write_nomem(path);
	rc = put_ints(x, "epoch", mt->epoch, mt->n, path);
	for (int c = 0; c < N_METRICS && !rc; c++) {
		const double *col = mf_metric_col_c(mt, c);
		int any = 0;
		for (int i = 0; col && i < mt->n && !any; i++)
			any = !isnan(col[i]);
		if (any)
			rc = put_reals(x, mf_metric_names[c], col, mt->n, path, k);
	}
	if (rc) {
		json_decref(x);
		return rc;
	}
	return put(o, "metrics", x, path);
}

static int build_run(json_t **out, const bv_mf_run *r, int teacher, const char *path, const char *w)
{
	char k[KEY_MAX];
	int rc = 0;
	json_t *o = json_object();
	if (!o)
		return write_nomem(path);
	if (r->n_epochs > 0 && !r->epochs)
		rc = bv_error_set(BV_EINVAL, "cannot write '%s': %s: %d epochs, none given", path,
				  mf_key(k, w, "epochs"), r->n_epochs);
	else if (teacher && r->n_epochs != 1)
		rc = bv_error_set(BV_EINVAL, "cannot write '%s': %s: %d epochs, expected one", path,
				  mf_key(k, w, "epoch"), r->n_epochs);
	if (!rc && !teacher) {
		rc = put(o, "method", json_string(bv_db_method_name(r->method)), path);
		if (!rc)
			rc = put_real(o, "temperature", r->temperature, path, w);
		if (!rc)
			rc = put_real(o, "alpha", r->alpha, path, w);
		if (!rc)
			rc = put_real(o, "gamma", r->gamma, path, w);
		if (!rc)
			rc = put_int(o, "seed", r->seed, path);
		/* written for inits only: a manifest of one init reads as before */
		if (!rc && r->init > 1)
			rc = put_int(o, "init", r->init, path);
	}
	if (!rc)
		rc = put_str(o, "model", r->model, path, w);
	if (!rc && teacher)
		rc = put_int(o, "epoch", r->epochs[0], path);
	if (!rc && !teacher) {
		rc = put_ints(o, "epochs", r->epochs, r->n_epochs, path);
		/* planned_epochs defaults to the last epoch: written when it is not that */
		if (!rc && (r->n_epochs == 0 || r->planned_epochs != r->epochs[r->n_epochs - 1]))
			rc = put_int(o, "planned_epochs", r->planned_epochs, path);
	}
	if (!rc)
		rc = build_logits(o, r, path, w);
	if (!rc)
		rc = put_str(o, "inbag", r->inbag, path, w);
	/* the teacher's test accuracy is one number, a run's one per epoch */
	if (!rc && r->test_acc)
		rc = teacher ? put_real(o, "test_acc", r->test_acc[0], path, w)
			     : put_reals(o, "test_acc", r->test_acc, r->n_epochs, path, w);
	if (!rc)
		rc = build_metrics(o, &r->metrics, path, w);
	if (!rc)
		rc = put_real(o, "seconds", r->seconds, path, w);
	if (!rc)
		rc = put_extras(o, r->extras, teacher ? mf_teacher_keys : mf_run_keys,
				teacher ? mf_run_keys : NULL, path, w);
	if (rc) {
		json_decref(o);
		return rc;
	}
	*out = o;
	return 0;
}

static int build(json_t **out, const bv_manifest *m, const char *path)
{
	char k[KEY_MAX];
	int rc = 0;
	json_t *root = json_object(), *labels = json_object(), *runs = json_array(), *r;
	if (!root || !labels || !runs) {
		json_decref(root);
		json_decref(labels);
		json_decref(runs);
		return write_nomem(path);
	}
	if ((rc = put(root, "format", json_string(BV_MANIFEST_FORMAT), path)) ||
	    (rc = put_int(root, "version", BV_MANIFEST_VERSION, path)) ||
	    (rc = put_str(root, "dataset", m->dataset, path, "")) ||
	    (rc = put_int(root, "classes", m->classes, path)))
		goto fail;
	for (int sp = 0; sp < BV_N_SPLITS; sp++)
		if ((rc = put_str(labels, bv_split_names[sp], m->labels[sp], path, "labels")))
			goto fail;
	rc = put(root, "labels", labels, path);
	labels = NULL;
	if (rc)
		goto fail;
	if (m->has_teacher) {
		if ((rc = build_run(&r, &m->teacher, 1, path, "teacher")) ||
		    (rc = put(root, "teacher", r, path)))
			goto fail;
	}
	if (m->n_runs > 0 && !m->runs) {
		rc = bv_error_set(BV_EINVAL, "cannot write '%s': runs: %d runs, none given", path,
				  m->n_runs);
		goto fail;
	}
	for (int i = 0; i < m->n_runs; i++) {
		if ((rc = build_run(&r, &m->runs[i], 0, path, mf_key_at(k, "runs", (size_t)i))))
			goto fail;
		if (json_array_append_new(runs, r) != 0) {
			rc = write_nomem(path);
			goto fail;
		}
	}
	rc = put(root, "runs", runs, path);
	runs = NULL;
	if (rc || (rc = put_extras(root, m->extras, mf_top_keys, NULL, path, "")))
		goto fail;
	*out = root;
	return 0;
fail:
	json_decref(root);
	json_decref(labels);
	json_decref(runs);
	return rc;
}

int bv_manifest_write(const bv_manifest *m, const char *path)
{
	json_t *root = NULL;
	char *text = NULL, *full = NULL;
	bv_manifest back;
	int rc;
	memset(&back, 0, sizeof back);
	if ((rc = build(&root, m, path)))
		return rc;
	text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
	json_decref(root);
	const size_t len = text ? strlen(text) : 0;
	if (!text || !(full = malloc(len + 2))) {
		rc = write_nomem(path);
		goto done;
	}
	memcpy(full, text, len);
	memcpy(full + len, "\n", 2);
	/* read back what is about to be written: a manifest bvtool writes is one
	 * it reads, as the struct it was given */
	if ((rc = bv_manifest_parse(&back, full, len + 1, path, m->dir)) != 0) {
		char msg[1400];
		const char *e = bv_error_last();
		const size_t pl = strlen(path);
		/* "'<path>': <what>" -> "cannot write '<path>': <what>" */
		if (e[0] == '\'' && strncmp(e + 1, path, pl) == 0 &&
		    strncmp(e + 1 + pl, "': ", 3) == 0)
			e += pl + 4;
		snprintf(msg, sizeof msg, "%s", e);
		rc = bv_error_set(rc == BV_ENOMEM ? rc : BV_EINVAL, "cannot write '%s': %s", path,
				  msg);
		goto done;
	}
	char why[600];
	if (bv_manifest_compare(m, &back, why, sizeof why)) {
		rc = bv_error_set(BV_EINVAL, "cannot write '%s': it would read back otherwise: %s",
				  path, why);
		goto done;
	}
	rc = bv_write_file_atomic(path, full, len + 1);
done:
	bv_manifest_free(&back);
	free(text);
	free(full);
	return rc;
}
