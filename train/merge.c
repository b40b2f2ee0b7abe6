/*
 * bvtool merge: shard databases (collect --shard, the ranks of collect --mpi)
 * into one, as if one machine had collected the whole grid. Two passes:
 * the first reads every shard and writes nothing (each a bvtool database of
 * this schema, the same fingerprint, a cell done in two places the same
 * bytes), so that a shard that does not belong is refused with the target
 * untouched; the second copies shard after shard, one transaction each
 * (db/merge.c does the rows, inside SQLite). Cells are matched by (method,
 * temperature, seed), never by run id: each shard numbers its own runs.
 */
#include "collect.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Config keys that are a database's own, not its collection's settings. */
static int own_key(const char *key)
{
	return strcmp(key, "bvtool_version") == 0 || strcmp(key, "shard") == 0;
}

/* A cell done somewhere: in which input (-1: the target) and as which run. */
typedef struct done_cell {
	bv_run_method method;
	double temp;
	int seed, init;
	int where;
	int64_t id;
} done_cell;

/* A split's labels or a seed's in-bag counts as the target has them, or will
 * once the shard `where` that brought them is in (-1: the target had them). */
struct plan_part {
	int *v;
	int n;
	int where;
};

typedef struct plan_part plan_part;

typedef struct merge_ctx {
	const char *target;
	const char *const *shards;
	int n;
	void (*say)(void *ctx, const char *line);
	void *say_ctx;
	bv_db_setting *ref;  /* the settings every input must have */
	int n_ref;
	const char *ref_name;
	done_cell *cells;
	int n_cells, cap;
	int shard_count;     /* N of the shards' "I/N", 0 when none had one */
	unsigned char *seen; /* (shard_count) the shard indices given */
	/* the plan as the target holds it (or will, once the shard is in): each
	 * split's labels and each seed's in-bag counts, read once, NULL until then */
	struct plan_part labels[2]; /* test, train */
	struct plan_part *inbag;    /* (n_inbag) by seed, of labels[1].n counts */
	int n_inbag;
	unsigned char *plan_new; /* (n) shard i has a split or seed the target has not */
	bv_db *target_db;     /* the first pass's read-only look at the target, or NULL */
} merge_ctx;

static const char *const splits[2] = {"test", "train"};

static void say(merge_ctx *m, const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	if (!m->say)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	m->say(m->say_ctx, line);
}

static const char *input_name(const merge_ctx *m, int where)
{
	return where < 0 ? m->target : m->shards[where];
}

/* The flag a setting comes from, for the message ("--lr"), else the key. */
static const char *flag_of(const char *key)
{
	const char *flag = bv_fingerprint_flag(key);
	return flag ? flag : key;
}

/* The settings of db against the reference: the first difference, in either
 * direction, as BV_EMISMATCH. */
static int compare_settings(merge_ctx *m, const char *name, const bv_db_setting *kv, int n)
{
	int i = 0, j = 0;
	/* both lists are sorted by key */
	while (i < n || j < m->n_ref) {
		if (i < n && own_key(kv[i].key)) {
			i++;
			continue;
		}
		if (j < m->n_ref && own_key(m->ref[j].key)) {
			j++;
			continue;
		}
		const int c = i >= n ? 1 : j >= m->n_ref ? -1 : strcmp(kv[i].key, m->ref[j].key);
		if (c == 0 && strcmp(kv[i].value, m->ref[j].value) == 0) {
			i++;
			j++;
			continue;
		}
		if (c == 0)
			return bv_error_set(BV_EMISMATCH, "'%s' was collected with %s %s, not %s as '%s'",
					    name, flag_of(kv[i].key), kv[i].value, m->ref[j].value,
					    m->ref_name);
		if (c < 0)
			return bv_error_set(BV_EMISMATCH,
					    "'%s' has the setting %s (%s), which '%s' has not", name,
					    flag_of(kv[i].key), kv[i].value, m->ref_name);
		return bv_error_set(BV_EMISMATCH, "'%s' lacks the setting %s (%s) of '%s'", name,
				    flag_of(m->ref[j].key), m->ref[j].value, m->ref_name);
	}
	return 0;
}

static int same_cell(const done_cell *c, const bv_run *r)
{
	const double temp = r->temperature;
	return c->method == r->method && c->seed == r->seed && c->init == r->init &&
	       ((isnan(c->temp) && isnan(temp)) || c->temp == temp);
}

/* The cell of a run (as run id), in nn's terms: the names are the same. */
static bv_cell run_cell(const bv_run *r, int64_t id)
{
	bv_cell c = {id, BV_METHOD_CE, r->temperature, r->seed, r->init};
	bv_method_parse(&c.method, bv_db_method_name(r->method), "method");
	return c;
}

/* A cell done in both a and b, with other snapshots in each. */
static int conflict(const char *a, const char *b, const bv_run *r)
{
	char label[64];
	const bv_cell c = run_cell(r, r->id);
	bv_cell_label(label, sizeof label, &c);
	return bv_error_set(BV_EMISMATCH, "'%s' and '%s' both hold %s, with different snapshots", a,
			    b, label);
}

/* Is run `id` of db the same as run `other_id` of the input `where`? */
static int same_as(merge_ctx *m, bv_db *db, int64_t id, int where, int64_t other_id, int *same)
{
	int rc = bv_db_attach(db, input_name(m, where));
	if (rc)
		return rc;
	rc = bv_db_merge_same(db, id, other_id, same);
	const int rc2 = bv_db_detach(db);
	return rc ? rc : rc2;
}

/* The done runs of input `where` (open as db): each new cell listed, each
 * one listed already compared with it. */
static int list_cells(merge_ctx *m, bv_db *db, int where)
{
	bv_run *runs = NULL;
	int n = 0, rc;
	if ((rc = bv_db_runs_list(db, &runs, &n)) != 0)
		return rc;
	for (int i = 0; i < n && rc == 0; i++) {
		const bv_run *r = &runs[i];
		int k = 0;
		if (r->status != BV_RUN_DONE)
			continue;
		while (k < m->n_cells && !same_cell(&m->cells[k], r))
			k++;
		if (k < m->n_cells) {
			int same = 0;
			if ((rc = same_as(m, db, r->id, m->cells[k].where, m->cells[k].id, &same)) != 0)
				break;
			if (!same)
				rc = conflict(input_name(m, m->cells[k].where), input_name(m, where), r);
			continue;
		}
		if (m->n_cells == m->cap) {
			int cap = m->cap ? 2 * m->cap : 256;
			done_cell *c = realloc(m->cells, sizeof *c * (size_t)cap);
			if (!c) {
				rc = bv_error_set(BV_ENOMEM, "out of memory for the cells");
				break;
			}
			m->cells = c;
			m->cap = cap;
		}
		m->cells[m->n_cells++] = (done_cell){r->method, r->temperature, r->seed, r->init, where, r->id};
	}
	free(runs);
	return rc;
}

/* The shard's "I/N", noted to tell which shards of N were not given. */
static int note_shard(merge_ctx *m, bv_db *db, const char *name)
{
	char text[64];
	int index, count, rc = bv_db_config_get(db, "shard", text, sizeof text);
	if (rc <= 0)
		return rc;
	if (bv_shard_parse(&index, &count, text) != 0)
		return bv_error_set(BV_EFORMAT, "'%s' has a bad shard setting '%s' (the database is "
						"damaged)",
				    name, text);
	if (m->shard_count && count != m->shard_count)
		return bv_error_set(BV_EMISMATCH, "'%s' is shard %s, of another split than %d shards",
				    name, text, m->shard_count);
	if (!m->shard_count) {
		if (!(m->seen = calloc((size_t)count, 1)))
			return bv_error_set(BV_ENOMEM, "out of memory");
		m->shard_count = count;
	}
	m->seen[index] = 1;
	return 0;
}

/* A split's labels in db into a new array; *out NULL when it has none. */
static int read_labels(bv_db *db, const char *split, int **out, int *n)
{
	int rc = bv_db_samples_get(db, split, NULL, 0, n);
	*out = NULL;
	if (rc || *n == 0)
		return rc;
	if (!(*out = malloc(sizeof(int) * (size_t)*n)))
		return bv_error_set(BV_ENOMEM, "out of memory for the labels");
	if ((rc = bv_db_samples_get(db, split, *out, *n, n)) != 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

/* A seed's in-bag counts (n) in db into a new array; *out NULL when it has none. */
static int read_inbag(bv_db *db, int seed, int n, int **out)
{
	if (!(*out = malloc(sizeof(int) * (size_t)(n ? n : 1))))
		return bv_error_set(BV_ENOMEM, "out of memory for the in-bag counts");
	const int rc = bv_db_inbag_get(db, seed, *out, n);
	if (rc) {
		free(*out);
		*out = NULL;
	}
	return rc == BV_ESTATE ? 0 : rc;
}

/* Hold shard `where`'s part (mine, n) against what the target has of it: read
 * from the target the first time (have, n_have; NULL when it has none, and
 * then the shard's, which the target is about to get), kept for the next
 * shards. 0 when they agree; else 1, with mine freed either way unless kept. */
static int hold(merge_ctx *m, int where, plan_part *p, int *have, int n_have, int *mine, int n)
{
	int differ = 0;
	if (!p->v) {
		*p = have ? (plan_part){have, n_have, -1} : (plan_part){mine, n, where};
		m->plan_new[where] |= !have;
	}
	if (p->v != mine)
		differ = p->n != n || memcmp(p->v, mine, sizeof(int) * (size_t)n) != 0;
	if (p->v != mine)
		free(mine);
	return differ;
}

/* The shard's samples and in-bag counts against the target's: read in C, a
 * scan each, rather than joined in SQL (a lookup per row, which took a third
 * of a merge's time). sdb is the shard, db the target (NULL when there is
 * none yet). Notes in plan_new[where] whether the shard brings a split or
 * seed the target lacks. */
static int check_plan(merge_ctx *m, bv_db *sdb, bv_db *db, int where)
{
	const char *name = input_name(m, where);
	int *seeds = NULL, n_seeds = 0, rc = 0;
	m->plan_new[where] = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		int *mine = NULL, *have = NULL, n = 0, n_have = 0;
		if ((rc = read_labels(sdb, splits[i], &mine, &n)) != 0 || !mine)
			continue;
		if (!m->labels[i].v && db && (rc = read_labels(db, splits[i], &have, &n_have)) != 0) {
			free(mine);
			break;
		}
		if (hold(m, where, &m->labels[i], have, n_have, mine, n))
			rc = bv_error_set(BV_EMISMATCH, "'%s' has other %s labels than '%s'", name,
					  splits[i], input_name(m, m->labels[i].where));
	}
	const int n = m->labels[1].n;
	if (rc == 0 && n > 0)
		rc = bv_db_inbag_seeds(sdb, &seeds, &n_seeds);
	for (int i = 0; i < n_seeds && rc == 0; i++) {
		const int seed = seeds[i];
		int *mine = NULL, *have = NULL;
		if (seed < 0 || seed > 10000000) {
			rc = bv_error_set(BV_EFORMAT, "'%s' has in-bag counts for seed %d (the database "
						      "is damaged)",
					  name, seed);
			break;
		}
		if (seed >= m->n_inbag) {
			plan_part *g = realloc(m->inbag, sizeof *g * (size_t)(seed + 1));
			if (!g) {
				rc = bv_error_set(BV_ENOMEM, "out of memory for the in-bag counts");
				break;
			}
			memset(g + m->n_inbag, 0, sizeof *g * (size_t)(seed + 1 - m->n_inbag));
			m->inbag = g;
			m->n_inbag = seed + 1;
		}
		if ((rc = read_inbag(sdb, seed, n, &mine)) != 0 || !mine)
			continue;
		if (!m->inbag[seed].v && db && (rc = read_inbag(db, seed, n, &have)) != 0) {
			free(mine);
			break;
		}
		if (hold(m, where, &m->inbag[seed], have, have ? n : 0, mine, n))
			rc = bv_error_set(BV_EMISMATCH, "'%s' has other in-bag counts for seed %d than '%s'",
					  name, seed, input_name(m, m->inbag[seed].where));
	}
	free(seeds);
	return rc;
}

/* One input of the first pass (where: -1 the target, else a shard). */
static int check_input(merge_ctx *m, int where)
{
	const char *name = input_name(m, where);
	bv_db *db = NULL;
	bv_db_setting *kv = NULL;
	int n = 0, rc;
	if ((rc = bv_db_open(&db, name, BV_DB_READONLY)) != 0 ||
	    (rc = bv_db_config_all(db, &kv, &n)) != 0)
		goto done;
	int has_data = 0;
	for (int i = 0; i < n; i++)
		has_data |= strcmp(kv[i].key, "data") == 0;
	if (!has_data) {
		/* an empty target takes the shards' settings */
		if (where >= 0)
			rc = bv_error_set(BV_EFORMAT, "'%s' holds no collection (no settings): "
						      "nothing to merge",
					  name);
		goto done;
	}
	if (!m->ref) {
		m->ref = kv;
		m->n_ref = n;
		m->ref_name = name;
		kv = NULL;
	} else if ((rc = compare_settings(m, name, kv, n)) != 0) {
		goto done;
	}
	if ((rc = list_cells(m, db, where)) != 0)
		goto done;
	if (where >= 0 && (rc = note_shard(m, db, name)) == 0)
		rc = check_plan(m, db, m->target_db, where);
done:
	free(kv);
	bv_db_close(db);
	return rc;
}

/* The same file twice, or the target among the shards: refused by inode. */
static int check_paths(const merge_ctx *m)
{
	struct stat a, b;
	const int t = stat(m->target, &a) == 0;
	for (int i = 0; i < m->n; i++) {
		if (stat(m->shards[i], &b) != 0)
			continue; /* bv_db_open names it */
		if (t && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return bv_error_set(BV_EINVAL, "cannot merge '%s' into itself", m->shards[i]);
		for (int j = 0; j < i; j++) {
			struct stat c;
			if (stat(m->shards[j], &c) == 0 && c.st_dev == b.st_dev && c.st_ino == b.st_ino)
				return bv_error_set(BV_EINVAL, "'%s' is given twice (as '%s')",
						    m->shards[i], m->shards[j]);
		}
	}
	return 0;
}

/* ---- the second pass ------------------------------------------------------ */

/* Copy a checkpoint file beside the target: a hard link where the file system
 * allows, else the bytes, atomically. A missing source is no error (the run is
 * recorded without a checkpoint): 1 then, else 0 or the error. */
static int copy_file(const char *from, const char *to)
{
	unsigned char *data = NULL;
	size_t len = 0;
	struct stat st;
	if (stat(from, &st) != 0 || !S_ISREG(st.st_mode))
		return 1;
	unlink(to); /* left by an interrupted merge, or older */
	if (link(from, to) == 0)
		return 0;
	int rc = bv_read_file(&data, &len, from);
	if (rc == 0)
		rc = bv_write_file_atomic(to, data, len);
	free(data);
	return rc;
}

typedef struct target_paths {
	char dir[1024], base[512];
} target_paths;

/* The checkpoint of a run just copied (shard run r, now run id of the target). */
static int copy_checkpoint(merge_ctx *m, bv_db *db, const target_paths *tp, const char *shard,
			   const bv_run *r, int64_t id)
{
	char sdir[1024], sbase[512], from[2048], rel[1200], to[2400];
	int rc;
	if (!r->checkpoint[0])
		return 0;
	bv_path_split(sdir, sizeof sdir, sbase, sizeof sbase, shard);
	/* only a file of the shard's own checkpoint directory: a path of the
	 * shard's choosing ("../../x") would be linked into the target's */
	const size_t lb = strlen(sbase);
	const char *file = r->checkpoint + lb + 6;
	if (strncmp(r->checkpoint, sbase, lb) != 0 || strncmp(r->checkpoint + lb, ".ckpt/", 6) != 0 ||
	    !*file || strchr(file, '/') || strcmp(file, ".") == 0 || strcmp(file, "..") == 0) {
		say(m, "note: '%s' names a checkpoint outside '%s.ckpt/' for run %lld; it is "
		       "recorded without one",
		    shard, sbase, (long long)id);
		return bv_db_run_set_checkpoint(db, id, NULL);
	}
	snprintf(from, sizeof from, "%s/%s", sdir, r->checkpoint);
	if (r->method == BV_RUN_TEACHER) {
		snprintf(rel, sizeof rel, "%s.ckpt/teacher.ckpt", tp->base);
	} else {
		const bv_cell c = run_cell(r, id);
		bv_ckpt_name(rel, sizeof rel, tp->base, &c);
	}
	snprintf(to, sizeof to, "%s/%s", tp->dir, rel);
	if ((rc = copy_file(from, to)) < 0)
		return rc;
	if (rc == 1)
		say(m, "note: '%s' lacks the checkpoint '%s'; run %lld is recorded without one", shard,
		    from, (long long)id);
	return bv_db_run_set_checkpoint(db, id, rc == 1 ? NULL : rel);
}

/* The settings, when the target has none yet: the reference's. */
static int copy_settings(merge_ctx *m, bv_db *db)
{
	char have[64];
	int rc = bv_db_config_get(db, "data", have, sizeof have);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	for (int i = 0; i < m->n_ref && rc == 0; i++)
		if (!own_key(m->ref[i].key))
			rc = bv_db_config_set(db, m->ref[i].key, m->ref[i].value);
	return rc ? rc : bv_db_config_set(db, "bvtool_version", BV_VERSION);
}

/* One shard into the target, in one transaction. */
static int merge_shard(merge_ctx *m, bv_db *db, const target_paths *tp, int si,
		       bv_merge_stats *st)
{
	const char *name = m->shards[si];
	bv_db *sdb = NULL;
	bv_run *runs = NULL;
	int n = 0, added = 0, same = 0, not_done = 0, rc;
	const char *teacher = "no teacher";
	long long bytes = 0;
	/* the shard's runs, read on a connection of its own before it is attached */
	if ((rc = bv_db_open(&sdb, name, BV_DB_READONLY)) != 0 ||
	    (rc = bv_db_runs_list(sdb, &runs, &n)) != 0) {
		bv_db_close(sdb);
		free(runs);
		return rc;
	}
	bv_db_close(sdb);
	if ((rc = bv_db_attach(db, name)) != 0) {
		free(runs);
		return rc;
	}
	if ((rc = bv_db_begin(db)) != 0)
		goto detach;
	if ((rc = copy_settings(m, db)) != 0 || (m->plan_new[si] && (rc = bv_db_merge_plan(db)) != 0))
		goto rollback;
	for (int i = 0; i < n && rc == 0; i++) {
		const bv_run *r = &runs[i];
		int64_t id = 0;
		bv_run have;
		if ((rc = bv_db_run_find(db, &id, r->method, r->temperature, r->seed,
					     r->init)) != 0)
			break;
		if (id && (rc = bv_db_run_get(db, &have, id)) != 0)
			break;
		if (r->status != BV_RUN_DONE) {
			not_done++;
			/* the grid stays visible: bvtool status lists the cell as not done */
			if (!id)
				rc = bv_db_run_ensure(db, &id, NULL, r->method, r->temperature, r->seed,
						      r->init, r->alpha, r->gamma, r->model, r->epochs);
			continue;
		}
		const int is_teacher = r->method == BV_RUN_TEACHER;
		if (id && have.status == BV_RUN_DONE) {
			int ok = 0;
			if ((rc = bv_db_merge_same(db, id, r->id, &ok)) != 0)
				break;
			if (!ok) {
				rc = conflict(m->target, name, r);
				break;
			}
			if (is_teacher)
				teacher = "the teacher already there";
			else
				same++;
			continue;
		}
		if ((rc = bv_db_merge_run(db, r->id, id, &id, &bytes)) != 0 ||
		    (rc = copy_checkpoint(m, db, tp, name, r, id)) != 0)
			break;
		if (is_teacher)
			teacher = "the teacher copied";
		else
			added++;
	}
	if (rc)
		goto rollback;
	if ((rc = bv_db_commit(db)) != 0)
		goto detach;
	st->shards++;
	st->added += added;
	st->same += same;
	st->not_done += not_done;
	st->bytes += bytes;
	say(m, "merged '%s': %d cell%s added, %d already there, %s (%.1f MB)", name, added,
	    added == 1 ? "" : "s", same, teacher, (double)bytes / 1e6);
	if (not_done)
		say(m, "note: %d cell%s of '%s' %s not done; collect that shard again, then merge "
		       "again",
		    not_done, not_done == 1 ? "" : "s", name, not_done == 1 ? "is" : "are");
	goto detach;
rollback:
	bv_db_rollback(db);
detach:;
	const int rc2 = bv_db_detach(db);
	free(runs);
	return rc ? rc : rc2;
}

int bv_merge(const char *target, const char *const *shards, int n, bv_merge_stats *out,
	     void (*say_fn)(void *ctx, const char *line), void *ctx)
{
	merge_ctx m = {target, shards, n, say_fn, ctx};
	bv_merge_stats st = {0};
	target_paths tp;
	bv_db *db = NULL;
	int lock_fd = -1, rc;
	struct stat tst;
	if (n < 1)
		return bv_error_set(BV_EINVAL, "merge: no shard database given");
	if ((rc = check_paths(&m)) != 0)
		goto done;
	/* the first pass: read everything, write nothing */
	if (!(m.plan_new = calloc((size_t)n, 1))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	const int target_exists = stat(target, &tst) == 0 && tst.st_size > 0;
	/* merge writes the target: an older schema is upgraded first, as by any
	 * writing command (the first pass reads it read-only, which refuses one) */
	if (target_exists && (rc = bv_db_open(&db, target, BV_DB_WRITE)) != 0)
		goto done;
	bv_db_close(db);
	db = NULL;
	if (target_exists && ((rc = check_input(&m, -1)) != 0 ||
			      (rc = bv_db_open(&m.target_db, target, BV_DB_READONLY)) != 0))
		goto done;
	for (int i = 0; i < n; i++)
		if ((rc = check_input(&m, i)) != 0)
			goto done;
	bv_db_close(m.target_db);
	m.target_db = NULL;

	/* the second pass */
	bv_path_split(tp.dir, sizeof tp.dir, tp.base, sizeof tp.base, target);
	if ((rc = bv_db_open(&db, target, BV_DB_CREATE)) != 0 ||
	    (rc = bv_collect_lock(&lock_fd, target)) != 0)
		goto done;
	char ckdir[2048];
	snprintf(ckdir, sizeof ckdir, "%s/%s.ckpt", tp.dir, tp.base);
	if (mkdir(ckdir, 0755) != 0 && errno != EEXIST) {
		rc = bv_error_set(BV_EIO, "cannot create '%s': %s", ckdir, strerror(errno));
		goto done;
	}
	const double t0 = bv_now();
	if ((rc = bv_db_copy_mode(db, 1)) != 0)
		goto done;
	for (int i = 0; i < n && rc == 0; i++)
		rc = merge_shard(&m, db, &tp, i, &st);
	const int rc2 = bv_db_copy_mode(db, 0);
	rc = rc ? rc : rc2;
	st.seconds = bv_now() - t0;
	if (rc == 0 && m.shard_count) {
		char missing[512] = "";
		size_t len = 0;
		int n_missing = 0;
		for (int i = 0; i < m.shard_count; i++)
			if (!m.seen[i] && len < sizeof missing - 16) {
				len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%d",
							n_missing ? ", " : "", i);
				n_missing++;
			}
		if (n_missing)
			say(&m, "note: shard%s %s of %d %s not among those merged; merge %s too when "
				"%s done",
			    n_missing == 1 ? "" : "s", missing, m.shard_count,
			    n_missing == 1 ? "is" : "are", n_missing == 1 ? "it" : "them",
			    n_missing == 1 ? "it is" : "they are");
	}
done:
	bv_db_close(m.target_db);
	bv_db_close(db);
	free(m.plan_new);
	if (lock_fd >= 0)
		close(lock_fd);
	free(m.ref);
	free(m.cells);
	free(m.seen);
	for (int i = 0; i < 2; i++)
		free(m.labels[i].v);
	for (int i = 0; i < m.n_inbag; i++)
		free(m.inbag[i].v);
	free(m.inbag);
	if (out)
		*out = st;
	return rc;
}
