/*
 * The local runner (collect --jobs N): cells run in up to N forked worker
 * processes, one cell each, on this machine. Each worker opens its own
 * connection to the plan's database and writes its cell's rows, one
 * transaction per epoch; it reports to the coordinator over one pipe shared by
 * all workers, a line per message:
 *   E <run_id> <epoch> <n_epochs> <test_acc %.6f> <seconds %.3f>   an epoch recorded
 *   D <run_id>                                                     the run is done
 *   F <run_id> <BV_E* code> <message>                              the cell failed
 * and exits (0 after D, 1 after F). The coordinator turns the lines into the
 * engine's events (collect.h), and a worker that dies without its last line
 * into BV_EV_CELL_FAILED. Beside the workers, the keeper (below) holds one
 * more connection open for the whole collect.
 */
#include "collect.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

typedef struct slot {
	pid_t pid;          /* the worker, 0 when the slot is free */
	int reported;       /* the worker sent its last line (D or F) and is exiting */
	bv_cell cell;
	double test_acc;    /* of its last E line, NAN before */
} slot;

typedef struct local_runner {
	bv_runner base;
	int tick_ms;
	pid_t keeper;       /* the keeper process, or -1 */
	int keeper_fd;      /* its socket, or -1 */
	int keeper_holds;   /* the keeper's connection is open (see keeper()) */
	/* while run() runs */
	bv_plan *plan;
	slot *slots;        /* (base.n_slots) */
	int pipe_fd[2];
	char buf[8192];     /* the pipe's bytes not yet a whole line */
	size_t buf_len;
	int start_failed;   /* fork failed: stop as if interrupted */
	bv_collect_event_fn on_event;
	void *ctx;
} local_runner;

/* ---- the keeper: a connection open for the whole collect ------------------ */

/*
 * The last connection to close a WAL database checkpoints it and deletes the WAL
 * under an exclusive lock, and the next one to open rebuilds the WAL index: a
 * reader without a busy timeout that comes then gets "database is locked".
 * Every worker opens and closes a connection of its own, so without a connection
 * that outlives them that happened whenever a cell ended while no other was open
 * (measured: 43 of 521 plain `sqlite3` queries during a collect --jobs 2).
 *
 * The keeper is a process of its own, forked before the coordinator opens the
 * database (attach: an SQLite connection must not cross a fork). On "o" it opens
 * a connection (an existing database before the coordinator's first open, a new
 * one once the plan has made it) and answers "k" or "e"; the connection holds no
 * transaction, so the workers' checkpoints are not held back. When every holder
 * of the socket's other end has gone (the coordinator; the workers inherit it,
 * so orphaned workers keep it) it closes: after "q" (the workers ran) by emptying
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
	signal(SIGINT, SIG_IGN); /* it ends when the coordinator does */
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

/* Fork the keeper; without one (no socket, no fork) readers may see a lock
 * now and then, nothing worse. */
static void keeper_start(local_runner *r, const char *path)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return;
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		keeper(sv[1], path);
	}
	close(sv[1]);
	r->keeper_fd = sv[0];
	r->keeper = pid;
}

/* Send the keeper a command; for "o" wait for its answer. A keeper that has
 * died is no error (MSG_NOSIGNAL: nor a SIGPIPE): it only serves readers. */
static void keeper_send(local_runner *r, char cmd)
{
	char c = 0;
	if (r->keeper_fd < 0 || send(r->keeper_fd, &cmd, 1, MSG_NOSIGNAL) != 1 || cmd != 'o')
		return;
	while (read(r->keeper_fd, &c, 1) < 0 && errno == EINTR)
		;
	r->keeper_holds = r->keeper_holds || c == 'k';
}

/* While the keeper holds its connection, no other is the last: a close need not
 * try the exclusive lock of the last connection's checkpoint, and must not, for
 * even the failed try holds the PENDING lock for an instant, in which a reader
 * without a busy timeout is refused ("in prepare, database is locked"). */
static void quiet_close(const local_runner *r, bv_db *db)
{
	if (db && r->keeper_holds)
		sqlite3_db_config(bv_db_handle(db), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
}

static void keeper_stop(local_runner *r)
{
	if (r->keeper_fd >= 0)
		close(r->keeper_fd);
	if (r->keeper > 0)
		while (waitpid(r->keeper, NULL, 0) < 0 && errno == EINTR)
			;
	r->keeper_fd = -1;
	r->keeper = -1;
	r->keeper_holds = 0;
}

/* The keeper comes before the plan's first connection; an existing database is
 * held from before that connection opens it. */
static int local_attach(bv_runner *base, const char *db_path)
{
	local_runner *r = (local_runner *)base;
	struct stat st;
	keeper_start(r, db_path);
	if (stat(db_path, &st) == 0 && st.st_size > 0)
		keeper_send(r, 'o');
	return 0;
}

/* A new database exists now. */
static void local_planned(bv_runner *base, const bv_plan *plan)
{
	keeper_send((local_runner *)base, 'o');
}

static void local_detach(bv_runner *base)
{
	keeper_stop((local_runner *)base);
}

/* ---- workers ------------------------------------------------------------ */

static void worker_progress(void *ctx, const bv_cell *cell, const bv_epoch_stats *st)
{
	const int *fd = ctx;
	char line[128];
	int len = snprintf(line, sizeof line, "E %lld %d %d %.6f %.3f\n", (long long)cell->run_id,
			   st->epoch, st->n_epochs, st->test_acc, st->seconds);
	if (write(*fd, line, (size_t)len) < 0) {
		/* the coordinator is gone; training goes on and the database still records it */
	}
}

/* Run in the child: train one cell, report the outcome, never return. */
static void worker(const local_runner *r, const bv_cell *cell)
{
	const bv_plan *plan = r->plan;
	int fd = r->pipe_fd[1];
	bv_db *db = NULL;
	char msg[1200];
	int rc;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	rc = bv_db_open(&db, plan->cfg.db_path, BV_DB_CREATE);
	quiet_close(r, db);
	if (rc == 0)
		rc = bv_plan_cell_run(plan, db, cell, worker_progress, &fd);
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
	_exit(rc == 0 ? 0 : 1);
}

/* ---- the coordinator ---------------------------------------------------------- */

static int stopping(const local_runner *r)
{
	return r->start_failed || (r->plan->cfg.stop && *r->plan->cfg.stop);
}

static void emit(local_runner *r, bv_collect_event ev)
{
	r->on_event(r->ctx, &ev);
}

/* One line from a worker. Lines of a worker whose slot is free are dropped. */
static void handle_line(local_runner *r, const char *line)
{
	long long run_id = 0;
	int si = -1, epoch = 0, n_ep = 0, code = 0, off = 0;
	double acc = 0, secs = 0;
	if (sscanf(line + 2, "%lld", &run_id) == 1)
		for (int i = 0; i < r->base.n_slots; i++)
			if (r->slots[i].pid > 0 && r->slots[i].cell.run_id == run_id)
				si = i;
	if (si < 0)
		return;
	slot *s = &r->slots[si];
	if (line[0] == 'E' &&
	    sscanf(line + 2, "%lld %d %d %lf %lf", &run_id, &epoch, &n_ep, &acc, &secs) == 5) {
		s->test_acc = acc;
		emit(r, (bv_collect_event){.kind = BV_EV_CELL_EPOCH, .slot = si, .cell = &s->cell,
					   .epoch = epoch, .n_epochs = n_ep, .test_acc = acc,
					   .seconds = secs});
	} else if (line[0] == 'D') {
		s->reported = 1;
		emit(r, (bv_collect_event){.kind = BV_EV_CELL_DONE, .slot = si, .cell = &s->cell,
					   .test_acc = s->test_acc});
	} else if (line[0] == 'F' && sscanf(line + 2, "%lld %d %n", &run_id, &code, &off) == 2) {
		s->reported = 1;
		/* a cell that failed because it was interrupted is only stopped */
		emit(r, (bv_collect_event){.kind = code == BV_EINTR ? BV_EV_CELL_STOPPED
								    : BV_EV_CELL_FAILED,
					   .slot = si, .cell = &s->cell, .code = code,
					   .message = line + 2 + off});
	}
}

/* Wait up to timeout_ms for the pipe, read what is there and handle its whole
 * lines. Returns 1 when something was read. */
static int read_pipe(local_runner *r, int timeout_ms)
{
	struct pollfd pfd = {r->pipe_fd[0], POLLIN, 0};
	int pr = poll(&pfd, 1, timeout_ms);
	if (pr <= 0 || !(pfd.revents & POLLIN))
		return 0;
	ssize_t n = read(r->pipe_fd[0], r->buf + r->buf_len, sizeof r->buf - 1 - r->buf_len);
	if (n > 0)
		r->buf_len += (size_t)n;
	char *line = r->buf, *nl;
	r->buf[r->buf_len] = '\0';
	while ((nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		handle_line(r, line);
		line = nl + 1;
	}
	r->buf_len = strlen(line);
	memmove(r->buf, line, r->buf_len);
	return n > 0;
}

/* A worker has exited: free its slot. One that exited before its last line
 * was read has written it already (a pipe write completes before _exit), so
 * the pipe is drained first; one that still has not reported died. */
static void reaped(local_runner *r, int si, int status)
{
	slot *s = &r->slots[si];
	while (!s->reported && read_pipe(r, 0))
		;
	if (!s->reported) {
		char why[64];
		if (WIFSIGNALED(status))
			snprintf(why, sizeof why, "worker killed by signal %d", WTERMSIG(status));
		else
			snprintf(why, sizeof why, "worker exited with status %d without a report",
				 WEXITSTATUS(status));
		const int kind = stopping(r) ? BV_EV_CELL_STOPPED : BV_EV_CELL_FAILED;
		emit(r, (bv_collect_event){.kind = kind, .slot = si, .cell = &s->cell,
					   .code = BV_EINTR, .message = why});
	}
	s->pid = 0;
}

/* Free the slots of workers that have reported: each is exiting now, so wait
 * for it rather than for the next tick, and its slot is free at once. Returns
 * how many were freed. */
static int reap_reported(local_runner *r)
{
	int status, n = 0;
	for (int i = 0; i < r->base.n_slots; i++)
		if (r->slots[i].pid > 0 && r->slots[i].reported &&
		    waitpid(r->slots[i].pid, &status, 0) == r->slots[i].pid) {
			r->slots[i].pid = 0;
			n++;
		}
	return n;
}

/* Fork a worker for cell into a free slot; 0, or -1 when fork failed. */
static int start(local_runner *r, const bv_cell *cell)
{
	int si = 0;
	while (r->slots[si].pid > 0)
		si++;
	pid_t pid = fork();
	if (pid < 0)
		return bv_error_set(BV_EIO, "cannot start a worker: %s", strerror(errno));
	if (pid == 0) {
		close(r->pipe_fd[0]);
		worker(r, cell);
	}
	r->slots[si] = (slot){pid, 0, *cell, NAN};
	emit(r, (bv_collect_event){.kind = BV_EV_CELL_START, .slot = si, .cell = &r->slots[si].cell,
				   .n_epochs = r->plan->cfg.epochs});
	return 0;
}

static int local_run(bv_runner *base, bv_plan *plan, const bv_cell *cells, int n_cells,
		     bv_collect_event_fn on_event, void *ctx)
{
	local_runner *r = (local_runner *)base;
	const int jobs = base->n_slots;
	int rc = 0, next = 0, active = 0;
	/* the workers: no connection crosses a fork */
	quiet_close(r, plan->db);
	bv_db_close(plan->db);
	plan->db = NULL;
	r->plan = plan;
	r->on_event = on_event;
	r->ctx = ctx;
	r->buf_len = 0;
	r->start_failed = 0;
	if (pipe(r->pipe_fd) != 0)
		return bv_error_set(BV_EIO, "cannot create a pipe: %s", strerror(errno));
	if (!(r->slots = calloc((size_t)jobs, sizeof *r->slots))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto done;
	}
	fflush(stdout); /* a worker must not inherit unwritten output */
	while ((next < n_cells && !stopping(r)) || active > 0) {
		while (!stopping(r) && next < n_cells && active < jobs) {
			if (start(r, &cells[next]) != 0) {
				rc = BV_EINTR;
				r->start_failed = 1;
				break;
			}
			next++;
			active++;
		}
		if (stopping(r) && active > 0) {
			for (int i = 0; i < jobs; i++)
				if (r->slots[i].pid > 0)
					kill(r->slots[i].pid, SIGTERM);
		}
		emit(r, (bv_collect_event){.kind = BV_EV_IDLE, .slot = -1});
		read_pipe(r, r->tick_ms);
		active -= reap_reported(r);
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (int i = 0; i < jobs; i++)
				if (r->slots[i].pid == pid) {
					reaped(r, i, status);
					active--;
				}
		}
		active -= reap_reported(r); /* those whose line the drain of reaped() read */
	}
	emit(r, (bv_collect_event){.kind = BV_EV_IDLE, .slot = -1});
	keeper_send(r, 'q');
	if (stopping(r))
		rc = BV_EINTR;
done:
	close(r->pipe_fd[0]);
	close(r->pipe_fd[1]);
	free(r->slots);
	r->slots = NULL;
	r->plan = NULL;
	return rc;
}

static void local_free(bv_runner *base)
{
	local_runner *r = (local_runner *)base;
	keeper_stop(r);
	free(r);
}

int bv_runner_local_new(bv_runner **out, int jobs, int tick_ms)
{
	local_runner *r;
	*out = NULL;
	if (jobs < 1)
		return bv_error_set(BV_EINVAL, "--jobs: expected at least 1, got %d", jobs);
	if (!(r = calloc(1, sizeof *r)))
		return bv_error_set(BV_ENOMEM, "out of memory");
	r->base = (bv_runner){"local", jobs, local_attach, local_planned, local_run, local_detach,
			      local_free};
	r->tick_ms = tick_ms;
	r->keeper = -1;
	r->keeper_fd = -1;
	r->pipe_fd[0] = r->pipe_fd[1] = -1;
	*out = &r->base;
	return 0;
}
