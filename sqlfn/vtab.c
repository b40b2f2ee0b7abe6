/*
 * bv_predictions: the predictions view (docs/schema.md) as an eponymous
 * virtual table, with the sample's label beside its logits:
 *   bv_predictions(run_id, epoch, split, sample_idx, logits, label)
 * It exists because the view cannot be grouped by sample: under GROUP BY
 * sample_idx, SQLite's sorter stores each row's whole snapshot BLOB and cuts
 * it after sorting (10,000 samples of 16 snapshots: 194 s), and even without
 * a sort every substr() of the view rereads its snapshot's overflow pages.
 * Here each snapshot is read once, in chunks, through sqlite3_blob_read.
 *
 * Constraints taken: run_id, epoch and split by = and IN (an IN list all at
 * once, so that one call sees every run of a method), sample_idx by =, <,
 * <=, > and >=. Two row orders, chosen by xBestIndex from the query's
 * ORDER BY or GROUP BY:
 *   natural    (run_id, epoch, split, sample_idx): one snapshot after another;
 *   by sample  (split, epoch, sample_idx, run_id): the snapshots of one
 *              (split, epoch) read side by side, so that every replica of a
 *              sample arrives together and GROUP BY sample_idx needs no sort.
 * Reads the main schema's snapshots and samples tables (schema 3 or later:
 * snapshots must be a rowid table for sqlite3_blob_open).
 */
#include "sqlfn_int.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { COL_RUN, COL_EPOCH, COL_SPLIT, COL_SAMPLE, COL_LOGITS, COL_LABEL };
#define IDX_BY_SAMPLE 1
#define CHUNK_BYTES (16 << 20) /* the buffers of all snapshots read side by side */

typedef struct pv_snap {
	sqlite3_int64 rowid, run_id, epoch;
	char *split; /* from sqlite3_mprintf */
	int split_id; /* 0 test, 1 train, -1 another name */
	int n, k;
	sqlite3_blob *blob;
	unsigned char *buf; /* samples [buf_lo, buf_lo + buf_n) of the snapshot */
	int buf_lo, buf_n, cap;
} pv_snap;

/* One constraint on run_id, epoch or split: the values it allows. */
typedef struct pv_filter {
	int col;
	int n;
	sqlite3_int64 *ints; /* run_id, epoch */
	char **texts;	     /* split */
} pv_filter;

typedef struct pv_cursor {
	sqlite3_vtab_cursor base;
	int by_sample;
	pv_snap *snaps;
	int n_snaps;
	sqlite3_int64 lo, hi; /* the samples asked for: [lo, hi) */
	int g_lo, g_hi;	      /* the snapshots of this group: [g_lo, g_hi) */
	sqlite3_int64 g_n;    /* the largest n among them */
	int j;		      /* the current snapshot */
	sqlite3_int64 i;      /* the current sample */
	sqlite3_int64 rowid;
	int eof;
	int *labels[2]; /* test, train: label by sample_idx, -1 for none */
	int n_labels[2];
} pv_cursor;

static int pv_disconnect(sqlite3_vtab *v)
{
	sqlite3_free(v);
	return SQLITE_OK;
}

/* Does the order asked for (cols[0..n) ascending) hold for rows sorted by
 * key[0..4), when the columns in fixed (a bit per column) take one value? */
static int order_holds(const int *cols, int n, const int key[4], unsigned fixed)
{
	int at = 0;
	for (int t = 0; t < n; t++) {
		if (fixed & (1u << cols[t]))
			continue;
		while (at < 4 && (fixed & (1u << key[at])))
			at++;
		if (at == 4 || key[at] != cols[t])
			return 0;
		at++;
	}
	return 1;
}

static int pv_best_index(sqlite3_vtab *v, sqlite3_index_info *info)
{
	static const int natural[4] = {COL_RUN, COL_EPOCH, COL_SPLIT, COL_SAMPLE};
	static const int by_sample[4] = {COL_SPLIT, COL_EPOCH, COL_SAMPLE, COL_RUN};
	char plan[64];
	int n_args = 0;
	unsigned fixed = 0;
	double rows = 1e7;
	for (int c = 0; c < info->nConstraint && n_args < (int)sizeof plan - 1; c++) {
		const struct sqlite3_index_constraint *k = &info->aConstraint[c];
		if (!k->usable || k->iColumn < 0)
			continue;
		char code = 0;
		/* split under another collation (COLLATE NOCASE): SQLite checks it */
		if (k->iColumn == COL_SPLIT && sqlite3_stricmp(sqlite3_vtab_collation(info, c), "BINARY") != 0)
			continue;
		if (k->iColumn <= COL_SPLIT && k->op == SQLITE_INDEX_CONSTRAINT_EQ) {
			int in = sqlite3_vtab_in(info, c, 1);
			code = (char)((in ? "RES" : "res")[k->iColumn]);
			if (!in)
				fixed |= 1u << k->iColumn;
			rows /= k->iColumn == COL_SPLIT ? 2 : 10;
		} else if (k->iColumn == COL_SAMPLE) {
			switch (k->op) {
			case SQLITE_INDEX_CONSTRAINT_EQ:
				code = '=';
				fixed |= 1u << COL_SAMPLE;
				rows /= 1e4;
				break;
			case SQLITE_INDEX_CONSTRAINT_GT:
				code = '>';
				break;
			case SQLITE_INDEX_CONSTRAINT_GE:
				code = 'g';
				break;
			case SQLITE_INDEX_CONSTRAINT_LT:
				code = '<';
				break;
			case SQLITE_INDEX_CONSTRAINT_LE:
				code = 'l';
				break;
			}
			if (code && code != '=')
				rows /= 2;
		}
		if (!code)
			continue;
		plan[n_args++] = code;
		info->aConstraintUsage[c].argvIndex = n_args;
		info->aConstraintUsage[c].omit = 1;
	}
	plan[n_args] = 0;
	int cols[16], n_cols = info->nOrderBy, asc = n_cols <= 16;
	for (int t = 0; t < n_cols && asc; t++) {
		cols[t] = info->aOrderBy[t].iColumn;
		asc = !info->aOrderBy[t].desc && cols[t] >= 0 && cols[t] <= COL_SAMPLE;
	}
	info->idxNum = 0;
	if (asc && order_holds(cols, n_cols, natural, fixed)) {
		info->orderByConsumed = n_cols > 0;
	} else if (asc && order_holds(cols, n_cols, by_sample, fixed)) {
		info->orderByConsumed = 1;
		info->idxNum = IDX_BY_SAMPLE;
	}
	info->idxStr = sqlite3_mprintf("%s", plan);
	if (!info->idxStr)
		return SQLITE_NOMEM;
	info->needToFreeIdxStr = 1;
	info->estimatedRows = rows < 1 ? 1 : (sqlite3_int64)rows;
	info->estimatedCost = rows < 1 ? 1 : rows;
	return SQLITE_OK;
}

static int pv_open(sqlite3_vtab *v, sqlite3_vtab_cursor **out)
{
	pv_cursor *cur = sqlite3_malloc(sizeof *cur);
	if (!cur)
		return SQLITE_NOMEM;
	memset(cur, 0, sizeof *cur);
	cur->eof = 1;
	*out = &cur->base;
	return SQLITE_OK;
}

static void snaps_clear(pv_cursor *cur)
{
	for (int j = 0; j < cur->n_snaps; j++) {
		sqlite3_blob_close(cur->snaps[j].blob);
		sqlite3_free(cur->snaps[j].buf);
		sqlite3_free(cur->snaps[j].split);
	}
	sqlite3_free(cur->snaps);
	cur->snaps = NULL;
	cur->n_snaps = 0;
}

static int pv_close(sqlite3_vtab_cursor *c)
{
	pv_cursor *cur = (pv_cursor *)c;
	snaps_clear(cur);
	for (int s = 0; s < 2; s++)
		sqlite3_free(cur->labels[s]);
	sqlite3_free(cur);
	return SQLITE_OK;
}

static int vt_error(sqlite3_vtab_cursor *c, int rc, const char *msg)
{
	sqlite3_free(c->pVtab->zErrMsg);
	c->pVtab->zErrMsg = sqlite3_mprintf("bv_predictions: %s", msg);
	return rc;
}

static sqlite3 *cursor_db(pv_cursor *cur);

/* The values one argument allows: the IN list's, or the one value. */
static int filter_values(pv_filter *f, int col, int in, sqlite3_value *arg)
{
	sqlite3_value *vals[1] = {arg}, *v;
	int n = 0, cap = 0, rc = SQLITE_OK;
	f->col = col;
	f->n = 0;
	f->ints = NULL;
	f->texts = NULL;
	for (rc = in ? sqlite3_vtab_in_first(arg, &v) : (v = vals[0], SQLITE_OK); rc == SQLITE_OK && v;
	     rc = in ? sqlite3_vtab_in_next(arg, &v) : (v = NULL, SQLITE_OK)) {
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			void *p = col == COL_SPLIT ? (void *)&f->texts : (void *)&f->ints;
			void *np = sqlite3_realloc64(*(void **)p, (sqlite3_uint64)cap * 8);
			if (!np)
				return SQLITE_NOMEM;
			*(void **)p = np;
		}
		if (col == COL_SPLIT) {
			/* = NULL matches nothing, nor does a BLOB; a number compares as
			 * its text (the column's TEXT affinity) */
			if (sqlite3_value_type(v) == SQLITE_NULL || sqlite3_value_type(v) == SQLITE_BLOB)
				continue;
			const unsigned char *t = sqlite3_value_text(v);
			if (t && strlen((const char *)t) != (size_t)sqlite3_value_bytes(v))
				continue; /* a NUL inside: no snapshot's split has one */
			f->texts[n] = sqlite3_mprintf("%s", t ? (const char *)t : "");
			if (!f->texts[n])
				return SQLITE_NOMEM;
			n++;
			f->n = n;
		} else {
			/* an INTEGER column: '3' and 3.0 mean 3, as the comparison would */
			int type = sqlite3_value_numeric_type(v);
			double d = sqlite3_value_double(v);
			if (type == SQLITE_INTEGER ||
			    (type == SQLITE_FLOAT && fabs(d) < 9e18 && d == (double)(sqlite3_int64)d))
				f->ints[n++] = sqlite3_value_int64(v);
			f->n = n;
		}
	}
	return in && rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void filter_release(pv_filter *f)
{
	if (f->texts)
		for (int t = 0; t < f->n; t++)
			sqlite3_free(f->texts[t]);
	sqlite3_free(f->texts);
	sqlite3_free(f->ints);
}

static int filter_allows(const pv_filter *f, const pv_snap *s)
{
	for (int t = 0; t < f->n; t++) {
		if (f->col == COL_RUN && f->ints[t] == s->run_id)
			return 1;
		if (f->col == COL_EPOCH && f->ints[t] == s->epoch)
			return 1;
		if (f->col == COL_SPLIT && strcmp(f->texts[t], s->split) == 0)
			return 1;
	}
	return 0;
}

/* The snapshots every filter allows, in the mode's order (their BLOBs are
 * opened a group at a time, by group_open). */
static int snaps_load(pv_cursor *cur, const pv_filter *f, int n_f)
{
	sqlite3 *db = cursor_db(cur);
	const char *sql = cur->by_sample
				  ? "SELECT rowid, run_id, epoch, split, n, k FROM main.snapshots "
				    "ORDER BY split, epoch, run_id"
				  : "SELECT rowid, run_id, epoch, split, n, k FROM main.snapshots "
				    "ORDER BY run_id, epoch, split";
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL), cap = 0;
	if (rc != SQLITE_OK) {
		rc = vt_error(&cur->base, rc, "this database has no bvtool snapshots table "
					      "(open it once with bvtool to create or migrate it)");
		goto done;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		pv_snap s = {0};
		/* the key as bvtool writes it: what else a hand-edited file holds there
		 * (epoch 1.5, a split of 9 or NULL) could not be reported as read nor
		 * kept in the order promised */
		if (sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
		    sqlite3_column_type(st, 2) != SQLITE_INTEGER ||
		    sqlite3_column_type(st, 3) != SQLITE_TEXT || sqlite3_column_type(st, 4) != SQLITE_INTEGER ||
		    sqlite3_column_type(st, 5) != SQLITE_INTEGER ||
		    strlen((const char *)sqlite3_column_text(st, 3)) != (size_t)sqlite3_column_bytes(st, 3)) {
			char msg[160];
			snprintf(msg, sizeof msg, "snapshot %lld: run_id, epoch, n and k must be integers and "
						  "split text without NUL", (long long)sqlite3_column_int64(st, 0));
			rc = vt_error(&cur->base, SQLITE_CORRUPT, msg);
			goto done;
		}
		s.rowid = sqlite3_column_int64(st, 0);
		s.run_id = sqlite3_column_int64(st, 1);
		s.epoch = sqlite3_column_int64(st, 2);
		const unsigned char *split = sqlite3_column_text(st, 3);
		s.split = sqlite3_mprintf("%s", split ? (const char *)split : "");
		if (!s.split) {
			rc = SQLITE_NOMEM;
			goto done;
		}
		s.split_id = strcmp(s.split, "test") == 0 ? 0 : strcmp(s.split, "train") == 0 ? 1 : -1;
		sqlite3_int64 n = sqlite3_column_int64(st, 4), k = sqlite3_column_int64(st, 5);
		int ok = 1;
		for (int t = 0; t < n_f && ok; t++)
			ok = filter_allows(&f[t], &s);
		if (!ok) {
			sqlite3_free(s.split);
			continue;
		}
		if (n < 0 || k < 1 || n > 1 << 30 || k > 1 << 24) {
			sqlite3_free(s.split);
			rc = vt_error(&cur->base, SQLITE_CORRUPT, "a snapshot has an impossible n or k");
			goto done;
		}
		s.n = (int)n;
		s.k = (int)k;
		if (cur->n_snaps == cap) {
			cap = cap ? 2 * cap : 16;
			pv_snap *ns = sqlite3_realloc64(cur->snaps, sizeof *ns * (sqlite3_uint64)cap);
			if (!ns) {
				sqlite3_free(s.split);
				rc = SQLITE_NOMEM;
				goto done;
			}
			cur->snaps = ns;
		}
		cur->snaps[cur->n_snaps++] = s;
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
done:
	sqlite3_finalize(st);
	return rc;
}

/* Makes sample i of snapshot j readable in its buffer. */
static int snap_fill(pv_cursor *cur, pv_snap *s, sqlite3_int64 i)
{
	if (i >= s->buf_lo && i < s->buf_lo + s->buf_n)
		return SQLITE_OK;
	int group = cur->by_sample ? cur->g_hi - cur->g_lo : 1;
	sqlite3_int64 per = CHUNK_BYTES / ((sqlite3_int64)group * s->k * 4);
	if (per < 1)
		per = 1;
	sqlite3_int64 end = cur->hi < s->n ? cur->hi : s->n;
	int cnt = (int)(end - i < per ? end - i : per);
	size_t bytes = (size_t)cnt * (size_t)s->k * 4;
	if ((sqlite3_int64)bytes > s->cap) {
		unsigned char *nb = sqlite3_realloc64(s->buf, bytes);
		if (!nb)
			return SQLITE_NOMEM;
		s->buf = nb;
		s->cap = (int)bytes;
	}
	int rc = sqlite3_blob_read(s->blob, s->buf, (int)bytes, (int)(i * s->k * 4));
	if (rc != SQLITE_OK)
		return vt_error(&cur->base, rc, "a snapshot changed while it was read");
	s->buf_lo = (int)i;
	s->buf_n = cnt;
	return SQLITE_OK;
}

/* The group that starts at g_lo: one snapshot in natural order, the
 * snapshots of one (split, epoch) by sample. */
static void group_start(pv_cursor *cur)
{
	const int by = cur->by_sample;
	cur->g_hi = cur->g_lo + 1;
	while (by && cur->g_hi < cur->n_snaps &&
	       cur->snaps[cur->g_hi].epoch == cur->snaps[cur->g_lo].epoch &&
	       strcmp(cur->snaps[cur->g_hi].split, cur->snaps[cur->g_lo].split) == 0)
		cur->g_hi++;
	cur->g_n = 0;
	for (int t = cur->g_lo; t < cur->g_hi; t++)
		cur->g_n = cur->snaps[t].n > cur->g_n ? cur->snaps[t].n : cur->g_n;
	cur->j = cur->g_lo;
	cur->i = cur->lo;
}

/* Opens the BLOBs of the group [g_lo, g_hi), each checked to hold n x k
 * floats; the group before it was closed by settle. */
static int group_open(pv_cursor *cur)
{
	sqlite3 *db = cursor_db(cur);
	int rc = SQLITE_OK;
	for (int j = cur->g_lo; j < cur->g_hi && rc == SQLITE_OK; j++) {
		pv_snap *s = &cur->snaps[j];
		rc = sqlite3_blob_open(db, "main", "snapshots", "logits", s->rowid, 0, &s->blob);
		if (rc != SQLITE_OK) {
			char msg[200];
			snprintf(msg, sizeof msg, "cannot read the logits of snapshot %lld: %s",
				 (long long)s->rowid, sqlite3_errmsg(db));
			rc = vt_error(&cur->base, rc, msg);
		} else if ((sqlite3_int64)sqlite3_blob_bytes(s->blob) != (sqlite3_int64)s->n * s->k * 4) {
			char msg[200];
			snprintf(msg, sizeof msg, "snapshot %lld holds %d bytes, not n x k x 4 = %lld",
				 (long long)s->rowid, sqlite3_blob_bytes(s->blob),
				 (long long)s->n * s->k * 4);
			rc = vt_error(&cur->base, SQLITE_CORRUPT, msg);
		}
	}
	return rc;
}

/* Moves from (j, i) to the next row that exists (i < n_j, i < hi), closing
 * the snapshots left behind. */
static int settle(pv_cursor *cur)
{
	for (;;) {
		if (cur->g_lo >= cur->n_snaps) {
			cur->eof = 1;
			return SQLITE_OK;
		}
		pv_snap *s = &cur->snaps[cur->j];
		if (cur->i < s->n && cur->i < cur->hi)
			return snap_fill(cur, s, cur->i);
		/* no sample i in snapshot j: the next snapshot of the group, or the
		 * next sample, or the next group */
		if (cur->by_sample && cur->j + 1 < cur->g_hi) {
			cur->j++;
		} else if (cur->by_sample && cur->i + 1 < cur->g_n && cur->i + 1 < cur->hi) {
			cur->i++;
			cur->j = cur->g_lo;
		} else {
			for (int t = cur->g_lo; t < cur->g_hi; t++) {
				sqlite3_blob_close(cur->snaps[t].blob);
				cur->snaps[t].blob = NULL;
				sqlite3_free(cur->snaps[t].buf);
				cur->snaps[t].buf = NULL;
				cur->snaps[t].cap = cur->snaps[t].buf_n = 0;
			}
			cur->g_lo = cur->g_hi;
			if (cur->g_lo < cur->n_snaps) {
				group_start(cur);
				int rc = group_open(cur);
				if (rc != SQLITE_OK)
					return rc;
			}
		}
	}
}

static int pv_next(sqlite3_vtab_cursor *c)
{
	pv_cursor *cur = (pv_cursor *)c;
	if (cur->by_sample) {
		if (++cur->j >= cur->g_hi) {
			cur->j = cur->g_lo;
			cur->i++;
		}
	} else {
		cur->i++;
	}
	cur->rowid++;
	return settle(cur);
}

static int pv_filter_fn(sqlite3_vtab_cursor *c, int idx_num, const char *idx_str, int argc,
			sqlite3_value **argv)
{
	pv_cursor *cur = (pv_cursor *)c;
	pv_filter f[64];
	int n_f = 0, rc = SQLITE_OK;
	snaps_clear(cur);
	cur->by_sample = idx_num & IDX_BY_SAMPLE;
	cur->lo = 0;
	cur->hi = (sqlite3_int64)1 << 62;
	cur->eof = 0;
	cur->rowid = 0;
	for (int a = 0; a < argc && idx_str[a] && rc == SQLITE_OK; a++) {
		char code = idx_str[a];
		const char *p = strchr("resRES", code);
		if (p) {
			rc = filter_values(&f[n_f], (int)((p - "resRES") % 3), code >= 'A' && code <= 'Z',
					   argv[a]);
			n_f++;
			continue;
		}
		/* sample_idx compared with: text that reads as a number, that number
		 * (the column's INTEGER affinity); NULL: no row; other text or a BLOB,
		 * which every integer sorts below: every row for < and <=, none for
		 * =, > and >= */
		int type = sqlite3_value_numeric_type(argv[a]);
		if (type != SQLITE_INTEGER && type != SQLITE_FLOAT) {
			if (type == SQLITE_NULL || (code != '<' && code != 'l'))
				cur->hi = 0;
			continue;
		}
		double d = sqlite3_value_double(argv[a]);
		sqlite3_int64 lo = d < 0 ? 0 : d > 4e18 ? (sqlite3_int64)4e18 : (sqlite3_int64)d;
		/* lo is d rounded toward 0; for a fraction, > and >= both start above it */
		int whole = (double)lo == d;
		switch (code) {
		case '=':
			if (!whole) {
				cur->hi = 0;
			} else if (d >= 0) {
				cur->lo = lo > cur->lo ? lo : cur->lo;
				cur->hi = lo + 1 < cur->hi ? lo + 1 : cur->hi;
			} else {
				cur->hi = 0;
			}
			break;
		case '>':
		case 'g': {
			sqlite3_int64 from = d < 0 ? 0 : lo + (code == '>' || !whole);
			cur->lo = from > cur->lo ? from : cur->lo;
			break;
		}
		case '<':
		case 'l': {
			sqlite3_int64 to = d < 0 ? 0 : lo + (code == 'l' || !whole);
			cur->hi = to < cur->hi ? to : cur->hi;
			break;
		}
		}
	}
	if (rc == SQLITE_OK)
		rc = snaps_load(cur, f, n_f);
	for (int t = 0; t < n_f; t++)
		filter_release(&f[t]);
	if (rc != SQLITE_OK)
		return rc;
	cur->g_lo = 0;
	if (cur->n_snaps == 0 || cur->lo >= cur->hi) {
		cur->eof = 1;
		return SQLITE_OK;
	}
	group_start(cur);
	rc = group_open(cur);
	return rc == SQLITE_OK ? settle(cur) : rc;
}

static int pv_eof(sqlite3_vtab_cursor *c)
{
	return ((pv_cursor *)c)->eof;
}

static const char *const split_names[2] = {"test", "train"};

/* The label of sample i of a snapshot's split; -1 when samples has none. */
static int label_of(pv_cursor *cur, const pv_snap *snap, sqlite3_int64 i, int *rc)
{
	const int s = snap->split_id;
	if (s < 0)
		return -1;
	if (cur->labels[s] && i >= cur->n_labels[s] && snap->n > cur->n_labels[s]) {
		/* loaded for an earlier filter's shorter snapshots */
		sqlite3_free(cur->labels[s]);
		cur->labels[s] = NULL;
	}
	if (!cur->labels[s]) {
		/* labels for the samples the snapshots of this split hold, no more: a
		 * samples row with a huge index costs nothing */
		sqlite3_int64 n = 0;
		for (int j = 0; j < cur->n_snaps; j++)
			if (cur->snaps[j].split_id == s && cur->snaps[j].n > n)
				n = cur->snaps[j].n;
		int *lab = sqlite3_malloc64(sizeof(int) * (sqlite3_uint64)(n + 1));
		sqlite3_stmt *st = NULL;
		*rc = lab ? SQLITE_OK : SQLITE_NOMEM;
		for (sqlite3_int64 t = 0; t < n && lab; t++)
			lab[t] = -1;
		if (*rc == SQLITE_OK)
			*rc = sqlite3_prepare_v2(cursor_db(cur),
						 "SELECT sample_idx, label FROM main.samples "
						 "WHERE split = ?1 AND sample_idx >= 0 AND sample_idx < ?2",
						 -1, &st, NULL);
		if (*rc == SQLITE_OK)
			*rc = sqlite3_bind_text(st, 1, split_names[s], -1, SQLITE_STATIC);
		if (*rc == SQLITE_OK)
			*rc = sqlite3_bind_int64(st, 2, n);
		while (*rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
			sqlite3_int64 idx = sqlite3_column_int64(st, 0);
			sqlite3_int64 y = sqlite3_column_int64(st, 1);
			if (idx >= 0 && idx < n && sqlite3_column_type(st, 1) == SQLITE_INTEGER && y >= 0 &&
			    y <= INT32_MAX)
				lab[idx] = (int)y; /* another label is no label: NULL */
		}
		sqlite3_finalize(st);
		if (*rc != SQLITE_OK) {
			sqlite3_free(lab);
			return -1;
		}
		cur->labels[s] = lab;
		cur->n_labels[s] = (int)n;
	}
	return i < cur->n_labels[s] ? cur->labels[s][i] : -1;
}

static int pv_column(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int col)
{
	pv_cursor *cur = (pv_cursor *)c;
	const pv_snap *s = &cur->snaps[cur->j];
	int rc = SQLITE_OK, y;
	switch (col) {
	case COL_RUN:
		sqlite3_result_int64(ctx, s->run_id);
		break;
	case COL_EPOCH:
		sqlite3_result_int64(ctx, s->epoch);
		break;
	case COL_SPLIT:
		if (s->split_id >= 0) /* a string literal: static indeed */
			sqlite3_result_text(ctx, split_names[s->split_id], -1, SQLITE_STATIC);
		else
			sqlite3_result_text(ctx, s->split, -1, SQLITE_TRANSIENT);
		break;
	case COL_SAMPLE:
		sqlite3_result_int64(ctx, cur->i);
		break;
	case COL_LOGITS:
		sqlite3_result_blob(ctx, s->buf + (size_t)(cur->i - s->buf_lo) * (size_t)s->k * 4,
				    s->k * 4, SQLITE_TRANSIENT);
		break;
	case COL_LABEL:
		y = label_of(cur, s, cur->i, &rc);
		if (rc != SQLITE_OK)
			return vt_error(c, rc, "cannot read the samples table");
		if (y >= 0)
			sqlite3_result_int(ctx, y);
		break;
	}
	return SQLITE_OK;
}

static int pv_rowid(sqlite3_vtab_cursor *c, sqlite3_int64 *out)
{
	*out = ((pv_cursor *)c)->rowid;
	return SQLITE_OK;
}

/* The connection, kept beside the vtab. */
typedef struct pv_vtab_db {
	sqlite3_vtab base;
	sqlite3 *db;
} pv_vtab_db;

static sqlite3 *cursor_db(pv_cursor *cur)
{
	return ((pv_vtab_db *)cur->base.pVtab)->db;
}

static int pv_connect_db(sqlite3 *db, void *aux, int argc, const char *const *argv,
			 sqlite3_vtab **out, char **err)
{
	int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(run_id INTEGER, epoch INTEGER, split TEXT, "
					  "sample_idx INTEGER, logits BLOB, label INTEGER)");
	if (rc != SQLITE_OK)
		return rc;
	pv_vtab_db *v = sqlite3_malloc(sizeof *v);
	if (!v)
		return SQLITE_NOMEM;
	memset(v, 0, sizeof *v);
	v->db = db;
	*out = &v->base;
	return SQLITE_OK;
}

static const sqlite3_module pv_module = {
	.iVersion = 0,
	.xCreate = NULL, /* eponymous only: no CREATE VIRTUAL TABLE */
	.xConnect = pv_connect_db,
	.xBestIndex = pv_best_index,
	.xDisconnect = pv_disconnect,
	.xDestroy = pv_disconnect,
	.xOpen = pv_open,
	.xClose = pv_close,
	.xFilter = pv_filter_fn,
	.xNext = pv_next,
	.xEof = pv_eof,
	.xColumn = pv_column,
	.xRowid = pv_rowid,
};

int sqlfn_vtab_register(sqlite3 *h)
{
	return sqlite3_create_module_v2(h, "bv_predictions", &pv_module, NULL, NULL);
}
