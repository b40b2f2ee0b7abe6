/*
 * The plan of a collection: the grid parsed into cells, and the database made
 * ready for them. bv_plan_init validates the settings, opens and locks the
 * database, stores the fingerprint (fingerprint.c), the samples' labels, the
 * in-bag counts of each seed and one run row per cell, and lists the cells
 * that are not done; bv_plan_release undoes what it holds. Running the cells
 * is run.c's, the teacher teacher.c's (collect.h tells the order).
 */
#include "collect.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the grid ------------------------------------------------------------ */

int bv_grid_parse_methods(bv_grid *g, const char *s)
{
	char buf[256];
	if (!*s || strlen(s) >= sizeof buf)
		return bv_error_set(BV_EINVAL, "--methods: expected a list such as ce,kd,wsl, got '%s'", s);
	strcpy(buf, s);
	g->n_methods = 0;
	for (char *tok = buf, *next; tok; tok = next) {
		bv_method m;
		next = strchr(tok, ',');
		if (next)
			*next++ = '\0';
		if (bv_method_parse(&m, tok, "--methods") != 0 || m == BV_METHOD_TEACHER)
			return bv_error_set(BV_EINVAL,
					    "--methods: unknown method '%s' (expected ce, kd, wsl or kd-filter)",
					    tok);
		for (int i = 0; i < g->n_methods; i++)
			if (g->methods[i] == m)
				return bv_error_set(BV_EINVAL, "--methods: '%s' is listed twice", tok);
		g->methods[g->n_methods++] = m;
	}
	return 0;
}

int bv_grid_parse_temps(bv_grid *g, const char *s)
{
	char buf[1024];
	if (!*s || strlen(s) >= sizeof buf)
		return bv_error_set(BV_EINVAL, "--temps: expected a list of temperatures such as 1,2,4,8, got '%s'", s);
	strcpy(buf, s);
	g->n_temps = 0;
	for (char *tok = buf, *next; tok; tok = next) {
		double t;
		next = strchr(tok, ',');
		if (next)
			*next++ = '\0';
		if (bv_parse_double(&t, tok, -1e308, 1000, "--temps") != 0 || !(t > 0))
			return bv_error_set(BV_EINVAL,
					    "--temps: bad temperature '%s' in '%s' (expected numbers > 0, e.g. 1,2,4,8)",
					    tok, s);
		for (int i = 0; i < g->n_temps; i++)
			if (g->temps[i] == t)
				return bv_error_set(BV_EINVAL, "--temps: %g is listed twice", t);
		if (g->n_temps >= BV_GRID_MAX_TEMPS)
			return bv_error_set(BV_EINVAL, "--temps: more than %d temperatures", BV_GRID_MAX_TEMPS);
		g->temps[g->n_temps++] = t;
	}
	return 0;
}

void bv_cell_label(char *out, size_t size, const bv_cell *c)
{
	char temp[32];
	if (isnan(c->temp)) {
		snprintf(out, size, "%s seed %d", bv_method_name(c->method), c->seed);
	} else {
		bv_number_format(temp, sizeof temp, c->temp);
		snprintf(out, size, "%s T=%s seed %d", bv_method_name(c->method), temp, c->seed);
	}
	if (c->init > 1) {
		const size_t len = strlen(out);
		snprintf(out + len, size > len ? size - len : 0, " init %d", c->init);
	}
}

void bv_collect_student_cfg(bv_train_cfg *out, const bv_collect_cfg *cfg)
{
	bv_train_cfg_default(out);
	out->schedule = cfg->schedule;
	out->augment = cfg->augment;
	out->teacher_bn_train = cfg->teacher_bn_train;
	out->loss.alpha = (float)cfg->alpha;
	out->loss.gamma = (float)cfg->gamma;
	out->lr = (float)cfg->lr;
	out->momentum = (float)cfg->momentum;
	out->wd = (float)cfg->wd;
	out->nesterov = cfg->nesterov;
	out->epochs = cfg->epochs;
	out->batch = cfg->batch;
	out->threads = cfg->threads;
}

/* ---- paths and the lock ------------------------------------------------------ */

void bv_ckpt_name(char *out, size_t size, const char *db_base, const bv_cell *c)
{
	char temp[40] = "", init[24] = "";
	if (!isnan(c->temp)) {
		temp[0] = '-';
		temp[1] = 'T';
		bv_number_format(temp + 2, sizeof temp - 2, c->temp);
	}
	if (c->init > 1)
		snprintf(init, sizeof init, "-i%d", c->init);
	snprintf(out, size, "%s.ckpt/run-%lld-%s%s-s%d%s.ckpt", db_base, (long long)c->run_id,
		 bv_method_name(c->method), temp, c->seed, init);
}

void bv_plan_ckpt_name(char *out, size_t size, const bv_plan *plan, const bv_cell *c)
{
	bv_ckpt_name(out, size, plan->db_base, c);
}

/* A collect killed while it wrote a checkpoint leaves the temporary file of
 * bv_write_file_atomic ("<name>.ckpt.tmp<pid>"); under the lock no other
 * collect is writing one, so those left in the directory are dropped. */
static void remove_stale_temps(const char *ckdir)
{
	DIR *dir = opendir(ckdir);
	struct dirent *e;
	char path[4096];
	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		const char *tmp = strstr(e->d_name, ".ckpt.tmp");
		if (!tmp || !tmp[9] || strspn(tmp + 9, "0123456789") != strlen(tmp + 9))
			continue;
		snprintf(path, sizeof path, "%s/%s", ckdir, e->d_name);
		unlink(path);
	}
	closedir(dir);
}

void bv_path_split(char *dir, size_t dsize, char *base, size_t bsize, const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash) {
		snprintf(dir, dsize, "%.*s", (int)(slash - path == 0 ? 1 : slash - path), path);
		snprintf(base, bsize, "%s", slash + 1);
	} else {
		snprintf(dir, dsize, ".");
		snprintf(base, bsize, "%s", path);
	}
}

/* A FIFO or device as --db would block SQLite's first read for ever: refuse it
 * before opening (a missing file is created, a directory named by bv_db_open). */
static int check_db_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return bv_error_set(BV_EIO, "'%s' is not a regular file", path);
	return 0;
}

int bv_collect_lock(int *out_fd, const char *path)
{
	int fd, rc;
	size_t size;
	if ((rc = bv_open_input(&fd, &size, path)) != 0)
		return rc;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return bv_error_set(BV_ESTATE,
				    "another bvtool collect or merge is writing '%s'; wait for it to finish",
				    path);
	}
	*out_fd = fd;
	return 0;
}

/* ---- the rows --------------------------------------------------------------- */

/* The database's method of nn's training method: the same name (the two
 * tables are held together by tests/test_contract.c). */
static int run_method(bv_run_method *out, bv_method m)
{
	return bv_db_method_parse(out, bv_method_name(m));
}

/* In one transaction: each seed's in-bag counts (drawn when missing) and a run
 * row per cell of the grid, or of the shard (--shard I/N), or none
 * (--teacher-only); the cells not done go to plan->cells. */
static int ensure_rows(bv_plan *plan)
{
	const bv_collect_cfg *o = &plan->cfg;
	const int n = plan->data.train.n;
	int *counts = malloc(sizeof(int) * (size_t)n);
	int *shard_of = NULL, n_grid = 0, rc;
	bv_cell *grid = NULL;
	if (!counts)
		return bv_error_set(BV_ENOMEM, "out of memory for the grid");
	if ((rc = bv_grid_cells(o, &grid, &n_grid)) != 0)
		goto done;
	if (!(shard_of = calloc((size_t)(n_grid ? n_grid : 1), sizeof *shard_of)) ||
	    !(plan->cells = calloc((size_t)(n_grid ? n_grid : 1), sizeof *plan->cells))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for the grid");
		goto done;
	}
	if (o->shard_count > 0 &&
	    (rc = bv_shard_assign(shard_of, o, grid, n_grid, o->shard_count)) != 0)
		goto done;
	if ((rc = bv_db_begin(plan->db)) != 0)
		goto done;
	for (int seed = 1; seed <= o->seeds && rc == 0; seed++) {
		if (bv_db_inbag_get(plan->db, seed, counts, n) == BV_ESTATE) {
			int *idx = malloc(sizeof(int) * (size_t)n);
			if (!idx) {
				rc = bv_error_set(BV_ENOMEM, "out of memory for the grid");
				break;
			}
			bv_bootstrap_draw(idx, counts, n, (unsigned long)seed);
			free(idx);
			rc = bv_db_inbag_put(plan->db, seed, counts, n);
		}
	}
	for (int i = 0; i < n_grid && rc == 0 && !o->teacher_only; i++) {
		bv_cell c = grid[i];
		bv_run run;
		bv_run_method rm;
		if (o->shard_count > 0 && shard_of[i] != o->shard_index)
			continue;
		if ((rc = run_method(&rm, c.method)) != 0 ||
		    (rc = bv_db_run_ensure(plan->db, &c.run_id, NULL, rm, c.temp, c.seed, c.init, o->alpha,
					   o->gamma, o->student_spec, o->epochs)) != 0 ||
		    (rc = bv_db_run_get(plan->db, &run, c.run_id)) != 0)
			break;
		plan->n_total++;
		if (run.status == BV_RUN_DONE)
			continue;
		plan->n_stale += run.status == BV_RUN_RUNNING;
		plan->n_failed += run.status == BV_RUN_FAILED;
		plan->cells[plan->n_cells++] = c;
	}
	if (rc)
		bv_db_rollback(plan->db);
	else
		rc = bv_db_commit(plan->db);
done:
	free(counts);
	free(grid);
	free(shard_of);
	return rc;
}

/* A shard's database says which shard it is ("I/N", for merge's note of the
 * shards not given); one database holds one shard. */
static int check_shard(bv_db *db, const bv_collect_cfg *o)
{
	char have[64], want[64];
	int rc;
	if (o->shard_count <= 0)
		return 0;
	snprintf(want, sizeof want, "%d/%d", o->shard_index, o->shard_count);
	if ((rc = bv_db_config_get(db, "shard", have, sizeof have)) < 0)
		return rc;
	if (rc > 0 && strcmp(have, want) != 0)
		return bv_error_set(BV_EMISMATCH,
				    "database '%s' holds shard %s, not %s (use another --db)",
				    bv_db_path(db), have, want);
	return rc > 0 ? 0 : bv_db_config_set(db, "shard", want);
}

/* ---- the plan --------------------------------------------------------------- */

int bv_plan_init(bv_plan *plan, const bv_collect_cfg *cfg, bv_runner *runner)
{
	const bv_collect_cfg *o = cfg;
	bv_fingerprint fp;
	bv_model *probe = NULL;
	bv_shape probe_shape = {1, 28, 28};
	char ckdir[2048];
	int rc;
	memset(plan, 0, sizeof *plan);
	plan->lock_fd = -1;
	plan->cfg = *cfg;
	bv_collect_student_cfg(&plan->student, cfg);
	bv_nn_set_threads(o->threads);
	bv_path_split(plan->db_dir, sizeof plan->db_dir, plan->db_base, sizeof plan->db_base,
		   o->db_path);

	/* validate the specs before touching anything */
	if ((rc = bv_model_new(&probe, o->student_spec, probe_shape, 10)) != 0)
		return bv_error_prefix(rc, "--student");
	bv_model_free(probe);
	if ((rc = bv_model_new(&probe, o->teacher_spec, probe_shape, 10)) != 0)
		return bv_error_prefix(rc, "--teacher");
	bv_model_free(probe);
	if ((rc = check_db_path(o->db_path)) != 0)
		return rc;

	if (runner && runner->attach && (rc = runner->attach(runner, o->db_path)) != 0)
		return rc;
	plan->runner = runner;
	if ((rc = bv_db_open(&plan->db, o->db_path, BV_DB_CREATE)) != 0)
		return rc;
	if ((rc = bv_collect_lock(&plan->lock_fd, o->db_path)) != 0)
		return rc;
	if ((rc = bv_data_load(&plan->data, o->data_spec)) != 0)
		return rc;
	if (o->subset > 0 && o->subset < plan->data.train.n)
		bv_data_truncate_train(&plan->data, o->subset);

	/* runs imported from elsewhere have no training settings to resume with */
	char source[32];
	if ((rc = bv_db_config_get(plan->db, "source", source, sizeof source)) < 0)
		return rc;
	if (rc > 0 && strcmp(source, "import") == 0)
		return bv_error_set(BV_EMISMATCH,
				    "database '%s' holds imported runs (bvtool import); collect into "
				    "another --db",
				    o->db_path);
	bv_fingerprint_make(&fp, o, &plan->data);
	if ((rc = bv_fingerprint_check(plan->db, &fp)) != 0)
		return rc;
	if ((rc = bv_db_config_set(plan->db, "bvtool_version", BV_VERSION)) != 0 ||
	    (rc = check_shard(plan->db, o)) != 0)
		return rc;
	const bv_data *d = &plan->data;
	if ((rc = bv_db_samples_put(plan->db, "test", d->test.y, d->test.n)) != 0 ||
	    (rc = bv_db_samples_put(plan->db, "train", d->train.y, d->train.n)) != 0)
		return rc;

	snprintf(ckdir, sizeof ckdir, "%s/%s.ckpt", plan->db_dir, plan->db_base);
	if (mkdir(ckdir, 0755) != 0 && errno != EEXIST)
		return bv_error_set(BV_EIO, "cannot create '%s': %s", ckdir, strerror(errno));
	remove_stale_temps(ckdir);

	if ((rc = ensure_rows(plan)) != 0)
		return rc;
	if (runner && runner->planned)
		runner->planned(runner, plan);
	return 0;
}

void bv_plan_release(bv_plan *plan)
{
	free(plan->cells);
	plan->cells = NULL;
	free(plan->teacher_logits);
	plan->teacher_logits = NULL;
	bv_data_release(&plan->data);
	bv_db_close(plan->db);
	plan->db = NULL;
	if (plan->runner && plan->runner->detach)
		plan->runner->detach(plan->runner);
	plan->runner = NULL;
	if (plan->lock_fd >= 0)
		close(plan->lock_fd);
	plan->lock_fd = -1;
}

void bv_runner_free(bv_runner *r)
{
	if (r && r->free)
		r->free(r);
}
