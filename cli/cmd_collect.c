/*
 * `bvtool collect`: the run grid. Trains the teacher once (or takes a given
 * checkpoint), then one student per (method, temperature, seed) cell on the
 * seed's bootstrap replica, recording every sample's logits at the recorded
 * epochs into the SQLite database.
 *
 * The parent process validates everything, prepares the database (config,
 * samples, in-bag counts, one `pending` row per cell, the teacher) and then
 * forks up to --jobs workers, one per cell; each worker opens its own
 * connection and writes its snapshots, one transaction per epoch. Workers
 * report progress to the parent over a pipe. A lock (flock on the database
 * file) keeps a second collect off the same database, so a `running` row seen
 * at start-up belongs to an interrupted collect and is redone from scratch.
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "train.h"

#define MAX_TEMPS 64

typedef struct collect_opts {
	const char *db_path, *data_spec, *teacher_spec, *teacher_ckpt, *student_spec;
	const char *methods, *temps, *record_epochs, *schedule, *augment, *teacher_bn;
	int seeds, teacher_epochs, teacher_seed, epochs, batch, jobs, threads, subset;
	int record_train, nesterov;
	double teacher_lr, lr, momentum, wd, alpha, gamma;
} collect_opts;

/* The parsed grid. */
typedef struct grid {
	int n_methods;
	bv_method methods[4];
	int n_temps;
	double temps[MAX_TEMPS];
} grid;

static volatile sig_atomic_t interrupted;
static int keeper_holds; /* the keeper's connection is open (see keeper()) */

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int parse_methods(grid *g, const char *s)
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

static int parse_temps(grid *g, const char *s)
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
		if (g->n_temps >= MAX_TEMPS)
			return bv_error_set(BV_EINVAL, "--temps: more than %d temperatures", MAX_TEMPS);
		g->temps[g->n_temps++] = t;
	}
	return 0;
}

/* ---- configuration: what must agree between collects on one database ---- */

/*
 * Numbers are stored as the shortest text that reads back exactly
 * (bv_number_format) and compared as text, so two settings that differ in the
 * 17th digit differ. The config key `numbers` = `exact` marks a database
 * written so; one without it (bvtool before issue 10 stored %g, 6 significant
 * digits) is compared at the 6 digits it holds, and its stored values are kept.
 */
typedef struct setting {
	const char *key;
	const char *flag;  /* named in the message when it differs */
	char value[1600];
	char legacy[32];   /* a number: its %g text, as an older bvtool stored it */
} setting;

static void set_number(setting *s, double v)
{
	bv_number_format(s->value, sizeof s->value, v);
	snprintf(s->legacy, sizeof s->legacy, "%g", v);
}

static int check_config(bv_db *db, setting *s, int n)
{
	char have[1600];
	int rc, legacy;
	/* an older database: it has settings, but not the mark of exact numbers */
	if ((rc = bv_db_config_get(db, "numbers", have, sizeof have)) < 0)
		return rc;
	legacy = rc == 0;
	if (legacy && (rc = bv_db_config_get(db, "data", have, sizeof have)) < 0)
		return rc;
	legacy = legacy && rc == 1;
	for (int i = 0; i < n; i++) {
		rc = bv_db_config_get(db, s[i].key, have, sizeof have);
		if (rc < 0)
			return rc;
		if (rc == 0 || strcmp(have, s[i].value) == 0)
			continue;
		if (legacy && s[i].legacy[0] && strcmp(have, s[i].legacy) == 0)
			continue;
		if (legacy && s[i].legacy[0])
			return bv_error_set(BV_EMISMATCH,
					    "database '%s' was collected with %s %s (6 digits), not %s "
					    "(use another --db)",
					    bv_db_path(db), s[i].flag, have, s[i].legacy);
		return bv_error_set(BV_EMISMATCH,
				    "database '%s' was collected with %s %s, not %s (use another --db)",
				    bv_db_path(db), s[i].flag, have, s[i].value);
	}
	if ((rc = bv_db_begin(db)) != 0)
		return rc;
	for (int i = 0; i < n && rc == 0; i++) {
		/* an older database keeps what it stored: it knows no more digits */
		if (legacy && (rc = bv_db_config_get(db, s[i].key, have, sizeof have)) != 0)
			rc = rc < 0 ? rc : 0;
		else
			rc = bv_db_config_set(db, s[i].key, s[i].value);
	}
	if (rc == 0 && !legacy)
		rc = bv_db_config_set(db, "numbers", "exact");
	if (rc) {
		bv_db_rollback(db);
		return rc;
	}
	return bv_db_commit(db);
}

/* ---- paths -------------------------------------------------------------- */

/* The checkpoint directory beside the database: "<db>.ckpt", and a cell's file
 * in it, "run-<id>-<method>[-T<temp>]-s<seed>.ckpt": unique by the run's id (the
 * rest is for people), so two cells never share a file. */
static void ckpt_name(char *rel, size_t size, const char *db_base, const bv_cell *c)
{
	char temp[40] = "";
	if (!isnan(c->temp)) {
		temp[0] = '-';
		temp[1] = 'T';
		bv_number_format(temp + 2, sizeof temp - 2, c->temp);
	}
	snprintf(rel, size, "%s.ckpt/run-%lld-%s%s-s%d.ckpt", db_base, (long long)c->run_id,
		 bv_method_name(c->method), temp, c->seed);
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

static void split_path(char *dir, size_t dsize, char *base, size_t bsize, const char *path)
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

/* ---- progress --------------------------------------------------------- */

typedef struct slot {
	pid_t pid;
	int reported;       /* the worker sent its last line (D or F) and is exiting */
	bv_cell cell;
	int epoch, n_epochs;
	double test_acc, started;
} slot;

typedef struct progress {
	int tty;
	int n_lines;        /* lines drawn last time (tty) */
	int total_epochs, done_epochs;
	int n_cells, done_cells;
	double t0;
} progress;

static void cell_label(char *out, size_t size, const bv_cell *c)
{
	char temp[32];
	if (isnan(c->temp)) {
		snprintf(out, size, "%s seed %d", bv_method_name(c->method), c->seed);
	} else {
		bv_number_format(temp, sizeof temp, c->temp);
		snprintf(out, size, "%s T=%s seed %d", bv_method_name(c->method), temp, c->seed);
	}
}

static void draw(progress *p, const slot *slots, int n_slots)
{
	if (!p->tty)
		return;
	/* back to the top of the previous drawing, and erase it all */
	if (p->n_lines > 0)
		printf("\033[%dA\r\033[J", p->n_lines);
	p->n_lines = 0;
	for (int i = 0; i < n_slots; i++) {
		char label[64];
		if (slots[i].pid <= 0)
			continue;
		cell_label(label, sizeof label, &slots[i].cell);
		printf("\r\033[K  %-22s epoch %3d/%-3d", label, slots[i].epoch, slots[i].n_epochs);
		if (slots[i].epoch > 0)
			printf("  test %6.2f%%", 100 * slots[i].test_acc);
		printf("  %5.0fs\n", bv_now() - slots[i].started);
		p->n_lines++;
	}
	const double frac = p->total_epochs ? (double)p->done_epochs / p->total_epochs : 1.0;
	const double elapsed = bv_now() - p->t0;
	char bar[31];
	int filled = (int)(frac * 30);
	for (int i = 0; i < 30; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[30] = '\0';
	printf("\r\033[K[%s] %3.0f%%  %d/%d cells  %.0fs", bar, 100 * frac, p->done_cells, p->n_cells,
	       elapsed);
	if (frac > 0 && frac < 1)
		printf("  eta %.0fs", elapsed / frac - elapsed);
	printf("\n");
	p->n_lines++;
	fflush(stdout);
}

/* Print a line above the live display (tty) or as it is. */
static void say(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(progress *p, const char *fmt, ...)
{
	va_list ap;
	if (p->tty && p->n_lines > 0) {
		printf("\033[%dA\r\033[J", p->n_lines);
		p->n_lines = 0;
	}
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* ---- the keeper: a connection open for the whole collect ------------------ */

/*
 * The last connection to close a WAL database checkpoints it and deletes the WAL
 * under an exclusive lock, and the next one to open rebuilds the WAL index: a
 * reader without a busy timeout that comes then gets "database is locked".
 * Every worker opens and closes a connection of its own, so without a connection
 * that outlives them that happened whenever a cell ended while no other was open
 * (measured: 43 of 521 plain `sqlite3` queries during a collect --jobs 2).
 *
 * The keeper is a process of its own, forked before the parent opens the
 * database (an SQLite connection must not cross a fork). On "o" it opens a
 * connection (an existing database before the parent's first open, a new one once
 * the parent has made it) and answers "k" or "e"; the connection holds no
 * transaction, so the workers' checkpoints are not held back. When every holder
 * of the socket's other end has gone (the parent; the workers inherit it, so
 * orphaned workers keep it) it closes: after "q" (the workers ran) by emptying
 * the WAL into the file first without waiting for anyone, then closing without
 * the locking checkpoint (the empty -wal and the -shm stay beside the database
 * for the next connection); otherwise as SQLite always does.
 */
static void keeper(int fd, const char *path)
{
	bv_db *db = NULL;
	char c, have[64];
	int quick = 0;
	ssize_t r;
	signal(SIGINT, SIG_IGN); /* it ends when the parent does */
	signal(SIGTERM, SIG_IGN);
	while ((r = read(fd, &c, 1)) > 0 || (r < 0 && errno == EINTR)) {
		if (r < 0)
			continue;
		if (c == 'q')
			quick = 1;
		if (c != 'o')
			continue;
		/* the read maps the WAL index: from here on this connection holds it */
		if (!db && bv_db_open(&db, path, BV_DB_WRITE) == 0 &&
		    bv_db_config_get(db, "data", have, sizeof have) < 0) {
			bv_db_close(db);
			db = NULL;
		}
		if (send(fd, db ? "k" : "e", 1, MSG_NOSIGNAL) != 1)
			break;
	}
	if (db && quick) {
		sqlite3 *h = bv_db_handle(db);
		sqlite3_busy_timeout(h, 0);
		if (sqlite3_wal_checkpoint_v2(h, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) ==
		    SQLITE_OK)
			sqlite3_db_config(h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	}
	bv_db_close(db);
	_exit(0);
}

static pid_t keeper_start(int *out_fd, const char *path)
{
	int sv[2];
	*out_fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1; /* no keeper: readers may see a lock now and then, nothing worse */
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		keeper(sv[1], path);
	}
	close(sv[1]);
	*out_fd = sv[0];
	return pid;
}

/* Send the keeper a command; for "o" wait for its answer. A keeper that has
 * died is no error (MSG_NOSIGNAL: nor a SIGPIPE): it only serves readers. */
static void keeper_send(int fd, char cmd)
{
	char c = 0;
	if (fd < 0 || send(fd, &cmd, 1, MSG_NOSIGNAL) != 1 || cmd != 'o')
		return;
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	keeper_holds = keeper_holds || c == 'k';
}

/* While the keeper holds its connection, no other is the last: a close need not
 * try the exclusive lock of the last connection's checkpoint, and must not, for
 * even the failed try holds the PENDING lock for an instant, in which a reader
 * without a busy timeout is refused ("in prepare, database is locked"). */
static void quiet_close(bv_db *db)
{
	if (db && keeper_holds)
		sqlite3_db_config(bv_db_handle(db), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
}

static void keeper_stop(pid_t pid, int fd)
{
	if (fd >= 0)
		close(fd);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

/* ---- workers ------------------------------------------------------------ */

typedef struct worker_ctx {
	int fd; /* the progress pipe */
} worker_ctx;

static void worker_progress(void *ctx, const bv_cell *cell, const bv_epoch_stats *st)
{
	const worker_ctx *w = ctx;
	char line[128];
	int len = snprintf(line, sizeof line, "E %lld %d %d %.6f %.3f\n", (long long)cell->run_id,
			   st->epoch, st->n_epochs, st->test_acc, st->seconds);
	if (write(w->fd, line, (size_t)len) < 0) {
		/* the parent is gone; training goes on and the database still records it */
	}
}

/* Run in the child: train one cell, report the outcome, never return. */
static void worker(int fd, const collect_opts *o, const bv_data *d, const bv_train_cfg *cfg,
		   const bv_record_cfg *rec, const bv_cell *cell, const float *teacher_logits,
		   const char *db_dir, const char *db_base)
{
	bv_db *db = NULL;
	char rel[1024], abs[2048], msg[1200];
	worker_ctx w = {fd};
	int rc;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	bv_nn_set_threads(o->threads);
	ckpt_name(rel, sizeof rel, db_base, cell);
	snprintf(abs, sizeof abs, "%s/%s", db_dir, rel);
	bv_train_cfg c = *cfg;
	bv_model *teacher = NULL;
	rc = bv_db_open(&db, o->db_path, BV_DB_CREATE);
	quiet_close(db);
	if (rc == 0 && cell->method != BV_METHOD_CE && (c.augment || c.teacher_bn_train)) {
		/* the teacher must see each augmented batch (or use batch statistics) */
		char tpath[2048];
		snprintf(tpath, sizeof tpath, "%s/%s.ckpt/teacher.ckpt", db_dir, db_base);
		if ((rc = bv_ckpt_load(&teacher, tpath, &d->shape, d->n_classes)) == 0)
			c.teacher = teacher;
	}
	if (rc == 0) {
		rc = bv_cell_train(db, d, o->student_spec, &c, rec, cell, teacher_logits, abs, rel,
				   worker_progress, &w);
		if (rc != 0) {
			char saved[1024];
			snprintf(saved, sizeof saved, "%s", bv_error_last());
			bv_db_run_set_status(db, cell->run_id, "failed");
			bv_error_set(rc, "%s", saved);
		}
	}
	int len = rc == 0 ? snprintf(msg, sizeof msg, "D %lld\n", (long long)cell->run_id)
			  : snprintf(msg, sizeof msg, "F %lld %d %s\n", (long long)cell->run_id, rc,
				     bv_error_last());
	if (len >= (int)sizeof msg) {
		msg[sizeof msg - 2] = '\n';
		len = (int)sizeof msg - 1;
	}
	if (write(fd, msg, (size_t)len) < 0) {
		/* nothing more to tell */
	}
	bv_db_close(db);
	bv_model_free(teacher);
	_exit(rc == 0 ? 0 : 1);
}

/* ---- the teacher -------------------------------------------------------- */

static int teacher_epoch(void *ctx, const bv_epoch_stats *st, bv_model *m)
{
	progress *p = ctx;
	say(p, "teacher: epoch %d/%d  loss %.4f  train %.2f%%  test %.2f%%  %.1fs\n", st->epoch,
	    st->n_epochs, st->loss, 100 * st->train_acc, 100 * st->test_acc, st->seconds);
	return interrupted ? bv_error_set(BV_EINTR, "interrupted") : 0;
}

/* Make sure the teacher is done; return its training-split logits in *out. */
static int prepare_teacher(float **out, bv_db *db, const collect_opts *o, const bv_data *d,
			   const char *db_dir, const char *db_base, progress *p)
{
	bv_model *t = NULL;
	int64_t id;
	bv_run run;
	char rel[1024], abs[2048];
	float *logits = NULL;
	int rc;
	*out = NULL;
	if ((rc = bv_db_run_ensure(db, &id, NULL, "teacher", NAN, 0, NAN, NAN, o->teacher_spec,
				   o->teacher_epochs)) != 0 ||
	    (rc = bv_db_run_get(db, &run, id)) != 0)
		return rc;
	snprintf(rel, sizeof rel, "%s.ckpt/teacher.ckpt", db_base);
	snprintf(abs, sizeof abs, "%s/%s", db_dir, rel);
	if (strcmp(run.status, "done") == 0) {
		/* the students of this database were distilled from exactly these bytes */
		logits = malloc(sizeof(float) * (size_t)d->train.n * (size_t)d->n_classes);
		if (!logits)
			return bv_error_set(BV_ENOMEM, "out of memory for teacher logits");
		if ((rc = bv_db_logits_get(db, id, o->teacher_epochs, "train", logits, d->train.n,
					   d->n_classes)) != 0)
			goto done;
		say(p, "teacher: %s, test accuracy %.2f%%\n", run.model, 100 * run.test_acc);
		*out = logits;
		return 0;
	} else if (o->teacher_ckpt) {
		if ((rc = bv_ckpt_load(&t, o->teacher_ckpt, &d->shape, d->n_classes)) != 0)
			return rc;
		if (strcmp(t->spec, o->teacher_spec) != 0) {
			rc = bv_error_set(BV_EMISMATCH, "--teacher-ckpt '%s' holds a %s, not --teacher %s",
					  o->teacher_ckpt, t->spec, o->teacher_spec);
			goto done;
		}
		if ((rc = bv_ckpt_save(t, abs)) != 0)
			goto done;
		say(p, "teacher: %s from %s\n", t->spec, o->teacher_ckpt);
	} else {
		bv_train_cfg cfg;
		bv_train_cfg_default(&cfg);
		cfg.lr = (float)o->teacher_lr;
		cfg.epochs = o->teacher_epochs;
		cfg.batch = o->batch;
		cfg.seed = (unsigned long)o->teacher_seed;
		cfg.threads = o->threads; /* not jobs * threads: the teacher must not depend on --jobs */
		bv_augment_parse(&cfg.augment, o->augment, "--augment"); /* checked already */
		if ((rc = bv_model_new(&t, o->teacher_spec, d->shape, d->n_classes)) != 0)
			return bv_error_prefix(rc, "--teacher");
		bv_model_init(t, (unsigned long)o->teacher_seed);
		if ((rc = bv_db_run_set_status(db, id, "running")) != 0)
			goto done;
		say(p, "teacher: training %s for %d epochs\n", t->spec, o->teacher_epochs);
		const double t0 = bv_now();
		if ((rc = bv_train_run(t, &cfg, d, NULL, 0, NULL, teacher_epoch, p)) != 0)
			goto done;
		run.seconds = bv_now() - t0;
		if ((rc = bv_ckpt_save(t, abs)) != 0)
			goto done;
	}
	logits = malloc(sizeof(float) * (size_t)d->train.n * (size_t)d->n_classes);
	if (!logits) {
		rc = bv_error_set(BV_ENOMEM, "out of memory for teacher logits");
		goto done;
	}
	if ((rc = bv_model_predict(t, logits, d->train.x, d->train.n, 500)) != 0)
		goto done;
	if ((rc = bv_teacher_record(db, id, t, d, logits, o->teacher_epochs, rel,
				    isnan(run.seconds) ? 0 : run.seconds)) != 0)
		goto done;
	if ((rc = bv_db_run_get(db, &run, id)) != 0)
		goto done;
	say(p, "teacher: %s, test accuracy %.2f%%\n", t->spec, 100 * run.test_acc);
	*out = logits;
	logits = NULL;
done:
	free(logits);
	bv_model_free(t);
	return rc;
}

/* ---- the command -------------------------------------------------------- */

/* A FIFO or device as --db would block SQLite's first read for ever: refuse it
 * before opening (a missing file is created, a directory named by bv_db_open). */
static int check_db_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return bv_error_set(BV_EIO, "'%s' is not a regular file", path);
	return 0;
}

static int lock_db(int *out_fd, const char *path)
{
	int fd, rc;
	size_t size;
	if ((rc = bv_open_input(&fd, &size, path)) != 0)
		return rc;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return bv_error_set(BV_ESTATE, "another bvtool collect is writing '%s'; wait for it to finish",
				    path);
	}
	*out_fd = fd;
	return 0;
}

static int collect(const collect_opts *o, const grid *g, const bv_train_cfg *cfg,
		   const bv_record_cfg *rec)
{
	bv_db *db = NULL;
	bv_data d = {0};
	float *teacher_logits = NULL;
	bv_cell *cells = NULL;
	slot *slots = NULL;
	int n_cells = 0, lock_fd = -1, rc, pipefd[2] = {-1, -1}, failures = 0, first_fail = 0;
	int keeper_fd = -1;
	pid_t keeper = -1;
	char first_msg[512] = "";
	char db_dir[1024], db_base[512];
	progress p = {0};
	p.tty = isatty(STDOUT_FILENO);
	p.t0 = bv_now();
	bv_nn_set_threads(o->threads);
	split_path(db_dir, sizeof db_dir, db_base, sizeof db_base, o->db_path);

	/* validate the specs before touching anything */
	bv_model *probe = NULL;
	bv_shape probe_shape = {1, 28, 28};
	if ((rc = bv_model_new(&probe, o->student_spec, probe_shape, 10)) != 0)
		return bv_error_prefix(rc, "--student");
	bv_model_free(probe);
	if ((rc = bv_model_new(&probe, o->teacher_spec, probe_shape, 10)) != 0)
		return bv_error_prefix(rc, "--teacher");
	bv_model_free(probe);

	if ((rc = check_db_path(o->db_path)) != 0)
		return rc;
	keeper = keeper_start(&keeper_fd, o->db_path);
	struct stat st;
	if (stat(o->db_path, &st) == 0 && st.st_size > 0)
		keeper_send(keeper_fd, 'o');
	if ((rc = bv_db_open(&db, o->db_path, BV_DB_CREATE)) != 0)
		goto done;
	if ((rc = lock_db(&lock_fd, o->db_path)) != 0)
		goto done;
	if ((rc = bv_data_load(&d, o->data_spec)) != 0)
		goto done;
	if (o->subset > 0 && o->subset < d.train.n)
		bv_data_truncate_train(&d, o->subset);

	/* settings that must agree across collects of one database */
	char sched[128], recs[1100];
	bv_schedule_format(sched, sizeof sched, &cfg->schedule);
	bv_record_format(recs, sizeof recs, rec);
	setting s[] = {
		{"data", "--data"}, {"train_samples", "--train-subset"}, {"teacher", "--teacher"},
		{"teacher_epochs", "--teacher-epochs"}, {"teacher_lr", "--teacher-lr"},
		{"teacher_seed", "--teacher-seed"}, {"student", "--student"}, {"epochs", "--epochs"},
		{"lr", "--lr"}, {"momentum", "--momentum"}, {"nesterov", "--nesterov"},
		{"wd", "--wd"}, {"schedule", "--schedule"}, {"batch", "--batch"},
		{"alpha", "--alpha"}, {"gamma", "--gamma"}, {"record_epochs", "--record-epochs"},
		{"record_train", "--record-train"}, {"n_classes", "--data"},
		{"augment", "--augment"}, {"teacher_bn", "--teacher-bn"},
	};
	snprintf(s[0].value, sizeof s[0].value, "%s:%s", d.name, d.dir);
	snprintf(s[1].value, sizeof s[1].value, "%d", d.train.n);
	snprintf(s[2].value, sizeof s[2].value, "%s", o->teacher_spec);
	snprintf(s[3].value, sizeof s[3].value, "%d", o->teacher_epochs);
	set_number(&s[4], o->teacher_lr);
	snprintf(s[5].value, sizeof s[5].value, "%d", o->teacher_seed);
	snprintf(s[6].value, sizeof s[6].value, "%s", o->student_spec);
	snprintf(s[7].value, sizeof s[7].value, "%d", o->epochs);
	set_number(&s[8], o->lr);
	set_number(&s[9], o->momentum);
	snprintf(s[10].value, sizeof s[10].value, "%s", o->nesterov ? "on" : "off");
	set_number(&s[11], o->wd);
	snprintf(s[12].value, sizeof s[12].value, "%s", sched);
	snprintf(s[13].value, sizeof s[13].value, "%d", o->batch);
	set_number(&s[14], o->alpha);
	set_number(&s[15], o->gamma);
	snprintf(s[16].value, sizeof s[16].value, "%s", recs);
	snprintf(s[17].value, sizeof s[17].value, "%s", o->record_train ? "on" : "off");
	snprintf(s[18].value, sizeof s[18].value, "%d", d.n_classes);
	snprintf(s[19].value, sizeof s[19].value, "%s", o->augment);
	snprintf(s[20].value, sizeof s[20].value, "%s", o->teacher_bn);
	if ((rc = check_config(db, s, (int)BV_ARRAY_LEN(s))) != 0)
		goto done;
	if ((rc = bv_db_config_set(db, "bvtool_version", BV_VERSION)) != 0)
		goto done;
	if ((rc = bv_db_samples_put(db, "test", d.test.y, d.test.n)) != 0 ||
	    (rc = bv_db_samples_put(db, "train", d.train.y, d.train.n)) != 0)
		goto done;

	/* the checkpoint directory */
	char ckdir[2048];
	snprintf(ckdir, sizeof ckdir, "%s/%s.ckpt", db_dir, db_base);
	if (mkdir(ckdir, 0755) != 0 && errno != EEXIST) {
		rc = bv_error_set(BV_EIO, "cannot create '%s': %s", ckdir, strerror(errno));
		goto done;
	}
	remove_stale_temps(ckdir);

	/* rows for every cell; a `running` row is left over from an interrupted collect */
	const int per_seed = g->n_methods * g->n_temps + 1;
	cells = calloc((size_t)o->seeds * (size_t)per_seed, sizeof *cells);
	int *counts = malloc(sizeof(int) * (size_t)d.train.n);
	if (!cells || !counts) {
		free(counts);
		rc = bv_error_set(BV_ENOMEM, "out of memory for the grid");
		goto done;
	}
	int n_total = 0, n_stale = 0, n_failed = 0;
	if ((rc = bv_db_begin(db)) != 0) {
		free(counts);
		goto done;
	}
	for (int seed = 1; seed <= o->seeds && rc == 0; seed++) {
		if (bv_db_inbag_get(db, seed, counts, d.train.n) == BV_ESTATE) {
			int *idx = malloc(sizeof(int) * (size_t)d.train.n);
			if (!idx) {
				rc = bv_error_set(BV_ENOMEM, "out of memory for the grid");
				break;
			}
			bv_bootstrap_draw(idx, counts, d.train.n, (unsigned long)seed);
			free(idx);
			if ((rc = bv_db_inbag_put(db, seed, counts, d.train.n)) != 0)
				break;
		}
		for (int mi = 0; mi < g->n_methods && rc == 0; mi++) {
			const bv_method m = g->methods[mi];
			const int nt = m == BV_METHOD_CE ? 1 : g->n_temps;
			for (int ti = 0; ti < nt && rc == 0; ti++) {
				bv_cell c = {0, m, m == BV_METHOD_CE ? NAN : g->temps[ti], seed};
				bv_run run;
				if ((rc = bv_db_run_ensure(db, &c.run_id, NULL, bv_method_name(m), c.temp,
							   seed, o->alpha, o->gamma, o->student_spec,
							   o->epochs)) != 0 ||
				    (rc = bv_db_run_get(db, &run, c.run_id)) != 0)
					break;
				n_total++;
				if (strcmp(run.status, "done") == 0)
					continue;
				n_stale += strcmp(run.status, "running") == 0;
				n_failed += strcmp(run.status, "failed") == 0;
				cells[n_cells++] = c;
			}
		}
	}
	free(counts);
	if (rc) {
		bv_db_rollback(db);
		goto done;
	}
	if ((rc = bv_db_commit(db)) != 0)
		goto done;
	keeper_send(keeper_fd, 'o');

	if ((rc = prepare_teacher(&teacher_logits, db, o, &d, db_dir, db_base, &p)) != 0)
		goto done;
	if (n_cells == 0) {
		say(&p, "all %d cells are done (%s)\n", n_total, o->db_path);
		rc = 0;
		goto done;
	}
	say(&p, "%d of %d cells to train (%d jobs)%s\n", n_cells, n_total, o->jobs,
	    n_stale ? "; interrupted cells are redone from scratch" : "");
	if (n_failed)
		say(&p, "%d cell%s that failed before %s tried again\n", n_failed, n_failed == 1 ? "" : "s",
		    n_failed == 1 ? "is" : "are");

	/* workers: the parent holds no connection across fork */
	quiet_close(db);
	bv_db_close(db);
	db = NULL;
	if (pipe(pipefd) != 0) {
		rc = bv_error_set(BV_EIO, "cannot create a pipe: %s", strerror(errno));
		goto done;
	}
	slots = calloc((size_t)o->jobs, sizeof *slots);
	if (!slots) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	p.n_cells = n_cells;
	p.total_epochs = n_cells * o->epochs;
	int next = 0, active = 0;
	char buf[8192];
	size_t buf_len = 0;
	fflush(stdout);
	while ((next < n_cells && !interrupted) || active > 0) {
		while (!interrupted && next < n_cells && active < o->jobs) {
			int si = 0;
			while (slots[si].pid > 0)
				si++;
			pid_t pid = fork();
			if (pid < 0) {
				rc = bv_error_set(BV_EIO, "cannot start a worker: %s", strerror(errno));
				interrupted = 1;
				break;
			}
			if (pid == 0) {
				close(pipefd[0]);
				worker(pipefd[1], o, &d, cfg, rec, &cells[next], teacher_logits, db_dir,
				       db_base);
			}
			slots[si] = (slot){pid, 0, cells[next], 0, o->epochs, NAN, bv_now()};
			next++;
			active++;
		}
		if (interrupted && active > 0) {
			for (int i = 0; i < o->jobs; i++)
				if (slots[i].pid > 0)
					kill(slots[i].pid, SIGTERM);
		}
		draw(&p, slots, o->jobs);
		struct pollfd pfd = {pipefd[0], POLLIN, 0};
		int pr = poll(&pfd, 1, p.tty ? 1000 : 200);
		if (pr > 0 && (pfd.revents & POLLIN)) {
			ssize_t r = read(pipefd[0], buf + buf_len, sizeof buf - 1 - buf_len);
			if (r > 0)
				buf_len += (size_t)r;
			char *line = buf, *nl;
			buf[buf_len] = '\0';
			while ((nl = strchr(line, '\n')) != NULL) {
				*nl = '\0';
				long long run_id = 0;
				int si = -1, epoch = 0, n_ep = 0, code = 0, off = 0;
				double acc = 0, secs = 0;
				if (sscanf(line + 2, "%lld", &run_id) == 1)
					for (int i = 0; i < o->jobs; i++)
						if (slots[i].pid > 0 && slots[i].cell.run_id == run_id)
							si = i;
				if (si >= 0 && line[0] == 'E' &&
				    sscanf(line + 2, "%lld %d %d %lf %lf", &run_id, &epoch, &n_ep, &acc, &secs) == 5) {
					slots[si].epoch = epoch;
					slots[si].test_acc = acc;
					p.done_epochs++;
					if (!p.tty) {
						char label[64];
						cell_label(label, sizeof label, &slots[si].cell);
						say(&p, "%s: epoch %d/%d  test %.2f%%  %.1fs\n", label, epoch, n_ep,
						    100 * acc, secs);
					}
				} else if (si >= 0 && line[0] == 'D') {
					char label[64];
					cell_label(label, sizeof label, &slots[si].cell);
					p.done_cells++;
					slots[si].reported = 1;
					say(&p, "done: %s  test accuracy %.2f%%\n", label, 100 * slots[si].test_acc);
				} else if (si >= 0 && line[0] == 'F' &&
					   sscanf(line + 2, "%lld %d %n", &run_id, &code, &off) == 2) {
					char label[64];
					cell_label(label, sizeof label, &slots[si].cell);
					slots[si].reported = 1;
					if (code != BV_EINTR) {
						say(&p, "failed: %s: %s\n", label, line + 2 + off);
						failures++;
						if (!first_fail) {
							first_fail = code;
							snprintf(first_msg, sizeof first_msg, "%s: %s", label,
								 line + 2 + off);
						}
					}
				}
				line = nl + 1;
			}
			buf_len = strlen(line);
			memmove(buf, line, buf_len);
		}
		/* reap finished workers: one that has reported is exiting now, so wait for it
		 * rather than for the next poll timeout, and its slot is free at once */
		int status;
		pid_t pid;
		for (int i = 0; i < o->jobs; i++)
			if (slots[i].pid > 0 && slots[i].reported &&
			    waitpid(slots[i].pid, &status, 0) == slots[i].pid) {
				slots[i].pid = 0;
				active--;
			}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (int i = 0; i < o->jobs; i++)
				if (slots[i].pid == pid) {
					slots[i].pid = 0;
					active--;
					if (WIFSIGNALED(status) && !interrupted) {
						char label[64];
						cell_label(label, sizeof label, &slots[i].cell);
						say(&p, "failed: %s: worker killed by signal %d\n", label,
						    WTERMSIG(status));
						failures++;
						if (!first_fail) {
							first_fail = BV_EINTR;
							snprintf(first_msg, sizeof first_msg,
								 "%s: worker killed by signal %d", label,
								 WTERMSIG(status));
						}
					}
				}
		}
	}
	draw(&p, slots, o->jobs);
	keeper_send(keeper_fd, 'q');
	if (interrupted) {
		rc = bv_error_set(BV_EINTR,
				  "interrupted: %d of %d cells done; run the same command again to resume",
				  p.done_cells, n_cells);
		goto done;
	}
	if (failures) {
		/* one line on stderr: the first failure, and how many there were */
		if (failures == 1)
			rc = bv_error_set(first_fail, "%s; the other cells are recorded in '%s'", first_msg,
					  o->db_path);
		else
			rc = bv_error_set(first_fail,
					  "%s; %d of %d cells failed (listed above); the others are recorded in '%s'",
					  first_msg, failures, n_cells, o->db_path);
		goto done;
	}
	say(&p, "collected %d cells in %.0fs: %s\n", n_cells, bv_now() - p.t0, o->db_path);
	rc = 0;
done:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	free(slots);
	free(cells);
	free(teacher_logits);
	bv_data_release(&d);
	bv_db_close(db);
	keeper_stop(keeper, keeper_fd);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}

int cmd_collect(const cli_cmd *cmd, int argc, char **argv)
{
	collect_opts o = {
		.db_path = "runs.db", .data_spec = "fashion-mnist", .teacher_spec = "mlp:1200-1200",
		.student_spec = "mlp:64", .methods = "ce,kd,wsl", .temps = "1,2,4,8",
		.record_epochs = "all", .schedule = "cosine", .augment = "none", .teacher_bn = "eval",
		.seeds = 8, .teacher_epochs = 10,
		.teacher_seed = 1, .epochs = 10, .batch = 128, .jobs = 1, .threads = 1,
		.teacher_lr = 0.05, .lr = 0.01, .momentum = 0.9, .wd = 5e-4, .alpha = 2.25, .gamma = 1,
	};
	const cli_opt opts[] = {
		{"--db", OPT_STR, &o.db_path, "FILE", "the SQLite database to create or extend"},
		{"--data", OPT_STR, &o.data_spec, "NAME[:DIR]", "fashion-mnist[:DIR], mnist:DIR, idx:DIR, cifar10:DIR or cifar100:DIR"},
		{"--train-subset", OPT_INT, &o.subset, "N", "use only the first N training samples (0 = all)", 0, 100000000},
		{"--teacher", OPT_STR, &o.teacher_spec, "SPEC", "the teacher's model spec"},
		{"--teacher-epochs", OPT_INT, &o.teacher_epochs, "N", "the teacher's training epochs", 1, 100000},
		{"--teacher-lr", OPT_DOUBLE, &o.teacher_lr, "LR", "the teacher's learning rate", 0, 100, 1},
		{"--teacher-seed", OPT_INT, &o.teacher_seed, "N", "the teacher's seed", 0, 2147483647},
		{"--teacher-ckpt", OPT_STR, &o.teacher_ckpt, "CKPT", "use this trained teacher instead of training one"},
		{"--student", OPT_STR, &o.student_spec, "SPEC", "the students' model spec"},
		{"--seeds", OPT_INT, &o.seeds, "B", "bootstrap replicas (seeds 1..B)", 1, 100000},
		{"--methods", OPT_STR, &o.methods, "LIST", "student methods: ce, kd, wsl, kd-filter"},
		{"--temps", OPT_STR, &o.temps, "LIST", "temperatures of the kd/wsl/kd-filter cells"},
		{"--alpha", OPT_DOUBLE, &o.alpha, "A", "weight of the soft term", 0, 1e6},
		{"--gamma", OPT_DOUBLE, &o.gamma, "G", "weight of the hard term in kd/wsl", 0, 1e6},
		{"--epochs", OPT_INT, &o.epochs, "N", "the students' training epochs", 1, 100000},
		{"--lr", OPT_DOUBLE, &o.lr, "LR", "the students' learning rate", 0, 100, 1},
		{"--momentum", OPT_DOUBLE, &o.momentum, "M", "SGD momentum", 0, 0.999},
		{"--nesterov", OPT_FLAG, &o.nesterov, NULL, "use Nesterov momentum"},
		{"--wd", OPT_DOUBLE, &o.wd, "WD", "weight decay", 0, 1},
		{"--schedule", OPT_STR, &o.schedule, "S", "const, cosine or step:E1,E2,...:GAMMA"},
		{"--batch", OPT_INT, &o.batch, "N", "mini-batch size", 1, 65536},
		{"--record-epochs", OPT_STR, &o.record_epochs, "E", "all, last, or a list such as 1,5,10"},
		{"--record-train", OPT_FLAG, &o.record_train, NULL, "also record the training split's logits"},
		{"--augment", OPT_STR, &o.augment, "A", "none, or crop-flip (random 4-pixel padded crop and horizontal flip)"},
		{"--teacher-bn", OPT_STR, &o.teacher_bn, "M", "the teacher's batch norm for the students: eval or train"},
		{"--jobs", OPT_INT, &o.jobs, "J", "cells trained at once (processes)", 1, 256},
		{"--threads", OPT_INT, &o.threads, "N", "BLAS threads per job", 1, 256},
		{0},
	};
	cli_cmd local = *cmd;
	local.opts = opts;
	grid g = {0};
	bv_train_cfg cfg;
	bv_record_cfg rec = {0};
	int rc = cli_parse(&local, argc, argv);
	if (rc)
		return rc < 0 ? BV_EXIT_OK : rc;
	bv_train_cfg_default(&cfg);
	if ((rc = parse_methods(&g, o.methods)) != 0 || (rc = parse_temps(&g, o.temps)) != 0 ||
	    (rc = bv_schedule_parse(&cfg.schedule, o.schedule, "--schedule")) != 0 ||
	    (rc = bv_record_parse(&rec, o.record_epochs, o.epochs, "--record-epochs")) != 0)
		return cli_fail(rc);
	rec.train = o.record_train;
	if ((rc = bv_augment_parse(&cfg.augment, o.augment, "--augment")) != 0)
		return cli_fail(rc);
	if (strcmp(o.teacher_bn, "eval") != 0 && strcmp(o.teacher_bn, "train") != 0)
		return cli_fail(bv_error_set(BV_EINVAL, "--teacher-bn: expected eval or train, got '%s'",
					     o.teacher_bn));
	cfg.teacher_bn_train = strcmp(o.teacher_bn, "train") == 0;
	cfg.loss.alpha = (float)o.alpha;
	cfg.loss.gamma = (float)o.gamma;
	cfg.lr = (float)o.lr;
	cfg.momentum = (float)o.momentum;
	cfg.wd = (float)o.wd;
	cfg.nesterov = o.nesterov;
	cfg.epochs = o.epochs;
	cfg.batch = o.batch;
	cfg.threads = o.threads;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = collect(&o, &g, &cfg, &rec);
	return rc ? cli_fail(rc) : BV_EXIT_OK;
}
