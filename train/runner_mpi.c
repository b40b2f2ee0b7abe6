/*
 * collect --mpi (train/collect_mpi.h): the cells of one grid spread over the ranks of
 * an Open MPI job, each rank writing its own shard database
 * (shard_dir/shard-<r>.db, the whole plan in each), rank 0 scheduling and
 * training too, and merging the shards into --db at the end.
 *
 * The job, in order; every message is a `wire` record (below):
 *   1. every rank: its shard's plan (bv_plan_init, no runner), then it tells
 *      rank 0 which cells its shard has done (UP_INIT and a byte per cell);
 *   2. rank 0: which cells are done anywhere (those maps, --db, older shards
 *      of shard_dir), the others sorted costliest first; then its teacher step
 *      and the checkpoint's bytes to every rank (DOWN_TEACHER), which records
 *      the teacher in its shard from them;
 *   3. the cells: a rank asks (UP_READY) and gets one (DOWN_CELL) or none
 *      (DOWN_FINISH); it reports its epochs and the cell's end (UP_EPOCH,
 *      UP_DONE, UP_FAILED, UP_STOPPED). On rank 0 a scheduler thread alone
 *      talks MPI meanwhile, while the main thread trains rank 0's cells from
 *      the same queue and emits every event, its own at once and the others'
 *      from a queue the scheduler fills;
 *   4. every rank closes its shard (UP_BYE, with the nonce it wrote beside the
 *      shard); a rank whose nonce rank 0 cannot read at that path (shard_dir
 *      is node-local storage) sends its shard's files (DOWN_SHIP, UP_FILE),
 *      which rank 0 writes to shard_dir/received/; rank 0 merges the shards it
 *      sees and those into --db and sends everyone the result (DOWN_RESULT),
 *      so that every rank returns the same code and message.
 *
 * Cells run in this process: an MPI process must not fork. Open MPI's blocking
 * calls spin at 100% CPU, and ranks share cores with training, so every wait
 * here is MPI_Test or MPI_Iprobe between naps. A rank that dies makes mpirun
 * end the job: each epoch is one transaction and a cell is done only with its
 * last, so a rerun of the same command trains only what is not done.
 */
#include "mpi_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
/* ---- waiting without spinning ---------------------------------------------- */

void mpi_nap(long ms)
{
	struct timespec ts = {0, ms * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void wait_req(MPI_Request *req)
{
	int flag = 0;
	MPI_Test(req, &flag, MPI_STATUS_IGNORE);
	while (!flag) {
		mpi_nap(2);
		MPI_Test(req, &flag, MPI_STATUS_IGNORE);
	}
}

void mpi_send_raw(const void *buf, int n, int to, int tag)
{
	MPI_Request req;
	MPI_Isend(buf, n, MPI_BYTE, to, tag, MPI_COMM_WORLD, &req);
	wait_req(&req);
}

void mpi_send_wire(const wire *w, int to, int tag)
{
	mpi_send_raw(w, (int)sizeof *w, to, tag);
}

void mpi_recv_raw(void *buf, int n, int from, int tag)
{
	MPI_Request req;
	MPI_Irecv(buf, n, MPI_BYTE, from, tag, MPI_COMM_WORLD, &req);
	wait_req(&req);
}

/* A string into a buffer of size bytes, cut to fit. */
static void copy_text(char *out, size_t size, const char *s)
{
	size_t n = strlen(s);
	if (n >= size)
		n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
}

void mpi_set_text(wire *w, const char *s)
{
	copy_text(w->text, sizeof w->text, s);
}

static int stop_flag(const job *j)
{
	return j->cfg->stop && *j->cfg->stop;
}

/* ---- the grid and the shard ------------------------------------------------ */

static int cell_find(bv_db *db, bv_cell *c)
{
	bv_run_method rm;
	int rc;
	if ((rc = bv_db_method_parse(&rm, bv_method_name(c->method))) != 0 ||
	    (rc = bv_db_run_find(db, &c->run_id, rm, c->temp, c->seed, c->init)) != 0)
		return rc;
	if (c->run_id == 0) {
		char label[64];
		bv_cell_label(label, sizeof label, c);
		return bv_error_set(BV_ESTATE, "'%s' has no run of %s", bv_db_path(db), label);
	}
	return 0;
}

/* The cell of (method, temperature, seed, init) in the grid, or -1. */
static int cell_index(const job *j, bv_run_method m, double temp, int seed, int init)
{
	for (int i = 0; i < j->n_cells; i++) {
		const bv_cell *c = &j->cells[i];
		bv_run_method cm;
		if (c->seed != seed || c->init != init || bv_db_method_parse(&cm, bv_method_name(c->method)) != 0 ||
		    cm != m)
			continue;
		if ((isnan(c->temp) && isnan(temp)) || c->temp == temp)
			return i;
	}
	return -1;
}

/* A nonce beside this rank's shard (in its checkpoint directory): rank 0 reads
 * the same text at that path only when it sees this rank's files. */
static int write_nonce(job *j)
{
	char path[4096];
	unsigned char r[16] = {0};
	FILE *f = fopen("/dev/urandom", "rb");
	struct timespec ts;
	size_t got = f ? fread(r, 1, sizeof r, f) : 0;
	if (f)
		fclose(f);
	clock_gettime(CLOCK_REALTIME, &ts);
	if (got < sizeof r)
		snprintf(j->my_nonce, sizeof j->my_nonce, "%d-%ld-%ld-%ld", j->rank, (long)getpid(),
			 (long)ts.tv_sec, ts.tv_nsec);
	else
		for (size_t k = 0; k < sizeof r; k++)
			snprintf(j->my_nonce + 2 * k, 3, "%02x", r[k]);
	snprintf(path, sizeof path, "%s/%s.ckpt/nonce", j->plan.db_dir, j->plan.db_base);
	return bv_write_file_atomic(path, j->my_nonce, strlen(j->my_nonce));
}

/* This rank's shard: the plan, the grid's run ids in it, and which are done. */
static int open_shard(job *j, const char *path, unsigned char *done)
{
	bv_collect_cfg rc_cfg = *j->cfg;
	int rc;
	rc_cfg.db_path = path;
	rc_cfg.shard_index = 0;
	rc_cfg.shard_count = 0;
	rc_cfg.teacher_only = 0;
	j->planned = 1;
	if ((rc = bv_plan_init(&j->plan, &rc_cfg, NULL)) != 0)
		return rc;
	for (int i = 0; i < j->n_cells; i++) {
		bv_run run;
		if ((rc = cell_find(j->plan.db, &j->cells[i])) != 0 ||
		    (rc = bv_db_run_get(j->plan.db, &run, j->cells[i].run_id)) != 0)
			return rc;
		done[i] = run.status == BV_RUN_DONE;
	}
	return write_nonce(j);
}

/* The cells done in another database (--db, or a shard of an earlier job),
 * when it can be read: those need not run again, the merge brings them. */
static void mark_done_in(const job *j, const char *path, unsigned char *done)
{
	bv_db *db = NULL;
	bv_run *runs = NULL;
	int n = 0;
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
	    bv_db_open(&db, path, BV_DB_READONLY) != 0 || bv_db_runs_list(db, &runs, &n) != 0) {
		bv_db_close(db);
		return;
	}
	for (int k = 0; k < n; k++) {
		if (runs[k].status != BV_RUN_DONE || runs[k].method == BV_RUN_TEACHER)
			continue;
		const int i = cell_index(j, runs[k].method, runs[k].temperature, runs[k].seed,
				     runs[k].init);
		if (i >= 0)
			done[i] = 1;
	}
	free(runs);
	bv_db_close(db);
}

/* "shard-<digits>.db": its number, else -1. */
static long shard_number(const char *name)
{
	char *end;
	if (strncmp(name, "shard-", 6) != 0 || name[6] < '0' || name[6] > '9')
		return -1;
	long r = strtol(name + 6, &end, 10);
	return strcmp(end, ".db") == 0 ? r : -1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The paths of shard_dir's shard databases, sorted (caller frees each and the array). */
static int list_shards(char ***out, int *n_out, const char *shard_dir)
{
	DIR *dir = opendir(shard_dir);
	struct dirent *e;
	char **v = NULL;
	int n = 0, cap = 0, rc = 0;
	*out = NULL;
	*n_out = 0;
	if (!dir)
		return bv_error_set(BV_EIO, "--shard-dir: cannot read '%s': %s", shard_dir,
				    strerror(errno));
	while ((e = readdir(dir)) != NULL) {
		if (shard_number(e->d_name) < 0)
			continue;
		if (n == cap) {
			char **nv = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 16));
			if (!nv) {
				rc = bv_error_set(BV_ENOMEM, "out of memory");
				break;
			}
			v = nv;
		}
		size_t len = strlen(shard_dir) + strlen(e->d_name) + 2;
		if (!(v[n] = malloc(len))) {
			rc = bv_error_set(BV_ENOMEM, "out of memory");
			break;
		}
		snprintf(v[n++], len, "%s/%s", shard_dir, e->d_name);
	}
	closedir(dir);
	if (rc) {
		while (n > 0)
			free(v[--n]);
		free(v);
		return rc;
	}
	if (n)
		qsort(v, (size_t)n, sizeof *v, by_name);
	*out = v;
	*n_out = n;
	return 0;
}

static void free_list(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- rank 0: the queue of cells and of remote events -------------------------- */

typedef struct costed {
	double cost;
	int i;
} costed;

/* Costliest first; ties in grid order. */
static int by_cost(const void *a, const void *b)
{
	const costed *x = a, *y = b;
	if (x->cost != y->cost)
		return x->cost > y->cost ? -1 : 1;
	return x->i - y->i;
}

static int plan_todo(job *j, const unsigned char *done)
{
	const size_t cap = (size_t)(j->n_cells ? j->n_cells : 1);
	costed *v = malloc(sizeof *v * cap);
	double *cost = malloc(sizeof *cost * cap);
	if (!v || !cost || !(j->todo = malloc(sizeof *j->todo * cap))) {
		free(v);
		free(cost);
		return bv_error_set(BV_ENOMEM, "out of memory for the grid");
	}
	bv_cell_costs(cost, j->cfg, j->cells, j->n_cells);
	j->n_todo = 0;
	for (int i = 0; i < j->n_cells; i++)
		if (!done[i])
			v[j->n_todo++] = (costed){cost[i], i};
	qsort(v, (size_t)j->n_todo, sizeof *v, by_cost);
	for (int k = 0; k < j->n_todo; k++)
		j->todo[k] = v[k].i;
	free(v);
	free(cost);
	return 0;
}

/* The next cell to hand out, or -1 (none left, or stopping). */
static int take(job *j)
{
	int i = -1;
	pthread_mutex_lock(&j->lock);
	if (!j->stopping && j->next < j->n_todo)
		i = j->todo[j->next++];
	pthread_mutex_unlock(&j->lock);
	return i;
}

static void set_stopping(job *j, int interrupted)
{
	pthread_mutex_lock(&j->lock);
	j->stopping = 1;
	j->interrupted |= interrupted;
	pthread_mutex_unlock(&j->lock);
}

static int is_stopping(job *j)
{
	pthread_mutex_lock(&j->lock);
	const int s = j->stopping;
	pthread_mutex_unlock(&j->lock);
	return s;
}

/* A rank-level error: the first one is what every rank returns. */
void mpi_rank_error(job *j, int code, const char *msg)
{
	pthread_mutex_lock(&j->lock);
	if (!j->err_code) {
		j->err_code = code ? code : BV_EIO;
		snprintf(j->err_msg, sizeof j->err_msg, "%s", msg);
	}
	j->stopping = 1;
	pthread_mutex_unlock(&j->lock);
}

static void enqueue(job *j, const queued *e)
{
	pthread_mutex_lock(&j->lock);
	if (j->n_q == j->cap_q) {
		int cap = j->cap_q ? 2 * j->cap_q : 64;
		queued *nq = realloc(j->q, sizeof *nq * (size_t)cap);
		if (!nq) {
			/* out of memory: the event is lost to the display and the counts, the databases keep the cell */
			pthread_mutex_unlock(&j->lock);
			return;
		}
		j->q = nq;
		j->cap_q = cap;
	}
	j->q[j->n_q++] = *e;
	pthread_mutex_unlock(&j->lock);
}

/* Rank 0's main thread: pass an event on, counting what bv_plan_run counts. */
static void emit(job *j, const bv_collect_event *ev)
{
	bv_cell_tally_add(&j->tally, ev);
	if (j->on_event)
		j->on_event(j->ctx, ev);
}

/* Emit the queued remote events (rank 0's main thread). */
static void drain(job *j)
{
	queued *v;
	int n;
	pthread_mutex_lock(&j->lock);
	v = j->q;
	n = j->n_q;
	j->q = NULL;
	j->n_q = j->cap_q = 0;
	pthread_mutex_unlock(&j->lock);
	for (int k = 0; k < n; k++) {
		const queued *e = &v[k];
		bv_collect_event ev = {.kind = e->kind, .slot = e->slot, .cell = &j->cells[e->cell],
				       .epoch = e->epoch, .n_epochs = e->n_epochs,
				       .test_acc = e->test_acc, .seconds = e->seconds,
				       .code = e->code, .message = e->message};
		emit(j, &ev);
	}
	free(v);
}

/* ---- rank 0: the scheduler ------------------------------------------------------ */

/* One message from rank r. */
static void handle_up(job *j, const wire *w, int r, int *byes)
{
	int none, *busy = j->busy ? &j->busy[r] : &none;
	queued e = {.slot = r, .cell = w->cell, .n_epochs = j->cfg->epochs};
	wire d = {0};
	if ((w->kind == UP_EPOCH || w->kind == UP_DONE || w->kind == UP_FAILED ||
	     w->kind == UP_STOPPED) && (w->cell < 0 || w->cell >= j->n_cells))
		return;
	switch (w->kind) {
	case UP_READY:
		if ((d.cell = take(j)) >= 0) {
			d.kind = DOWN_CELL;
			*busy = d.cell;
			e.kind = BV_EV_CELL_START;
			e.cell = d.cell;
			enqueue(j, &e);
		} else {
			d.kind = DOWN_FINISH;
		}
		mpi_send_wire(&d, r, TAG_DOWN);
		break;
	case UP_EPOCH:
		e.kind = BV_EV_CELL_EPOCH;
		e.epoch = w->epoch;
		e.n_epochs = w->n_epochs;
		e.test_acc = w->test_acc;
		e.seconds = w->seconds;
		enqueue(j, &e);
		break;
	case UP_DONE:
	case UP_FAILED:
	case UP_STOPPED:
		*busy = -1;
		e.kind = w->kind == UP_DONE     ? BV_EV_CELL_DONE
			 : w->kind == UP_FAILED ? BV_EV_CELL_FAILED
						: BV_EV_CELL_STOPPED;
		e.test_acc = w->test_acc;
		e.code = w->code;
		snprintf(e.message, sizeof e.message, "%s", w->text);
		enqueue(j, &e);
		break;
	case UP_INTERRUPTED:
		set_stopping(j, 1);
		break;
	case UP_ERROR: {
		char msg[700];
		snprintf(msg, sizeof msg, "rank %d: %s", r, w->text);
		mpi_rank_error(j, w->code, msg);
		break;
	}
	case UP_BYE:
		*busy = -1;
		(*byes)++;
		if (j->nonce)
			copy_text(j->nonce[r], sizeof j->nonce[r], w->text);
		break;
	default:
		break;
	}
}

/* Until every other rank has said bye: answer their messages, and once the
 * job stops, tell the busy ones to stop their cells. While it runs it is the
 * only MPI caller of rank 0. */
static void schedule(job *j)
{
	int byes = 0, stop_sent = 0;
	while (byes < j->size - 1) {
		int flag = 0;
		MPI_Status st;
		if (stop_flag(j))
			set_stopping(j, 1);
		if (!stop_sent && is_stopping(j)) {
			wire d = {.kind = DOWN_STOP};
			for (int r = 1; r < j->size && j->busy; r++)
				if (j->busy[r] >= 0)
					mpi_send_wire(&d, r, TAG_DOWN);
			stop_sent = 1;
		}
		MPI_Iprobe(MPI_ANY_SOURCE, TAG_UP, MPI_COMM_WORLD, &flag, &st);
		if (!flag) {
			mpi_nap(2);
			continue;
		}
		wire w;
		mpi_recv_raw(&w, (int)sizeof w, st.MPI_SOURCE, TAG_UP);
		w.text[sizeof w.text - 1] = '\0';
		handle_up(j, &w, st.MPI_SOURCE, &byes);
	}
	pthread_mutex_lock(&j->lock);
	j->sched_done = 1;
	pthread_mutex_unlock(&j->lock);
}

static void *schedule_thread(void *arg)
{
	schedule(arg);
	return NULL;
}

/* ---- running a cell on this rank -------------------------------------------------- */

/* The running cell is to stop: a cell in this process cannot be killed, so its
 * connection refuses writes from now on, and its next epoch's transaction fails
 * and ends it, its row left `running` (redone by the next collect). */
static void refuse_writes(job *j, int on)
{
	if (j->plan.db)
		sqlite3_exec(bv_db_handle(j->plan.db),
			     on ? "PRAGMA query_only = 1" : "PRAGMA query_only = 0", NULL, NULL, NULL);
}

static void say_interrupted(job *j)
{
	if (j->rank > 0 && stop_flag(j) && !j->said_interrupt) {
		wire u = {.kind = UP_INTERRUPTED};
		mpi_send_wire(&u, 0, TAG_UP);
		j->said_interrupt = 1;
	}
}

/* After each recorded epoch of this rank's cell. */
static void on_epoch(void *ctx, const bv_cell *cell, const bv_epoch_stats *st)
{
	job *j = ctx;
	j->cell_acc = st->test_acc;
	if (j->rank == 0) {
		bv_collect_event ev = {.kind = BV_EV_CELL_EPOCH, .slot = 0, .cell = cell,
				       .epoch = st->epoch, .n_epochs = st->n_epochs,
				       .test_acc = st->test_acc, .seconds = st->seconds};
		emit(j, &ev);
		drain(j);
		if (stop_flag(j))
			set_stopping(j, 1);
		j->stop_cell |= is_stopping(j);
	} else {
		wire w = {.kind = UP_EPOCH, .cell = (int)(cell - j->cells), .epoch = st->epoch,
			  .n_epochs = st->n_epochs, .test_acc = st->test_acc, .seconds = st->seconds};
		int flag = 0;
		mpi_send_wire(&w, 0, TAG_UP);
		/* only a stop comes while a cell runs */
		MPI_Iprobe(0, TAG_DOWN, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
		if (flag) {
			wire d;
			mpi_recv_raw(&d, (int)sizeof d, 0, TAG_DOWN);
			j->stop_cell |= d.kind == DOWN_STOP;
		}
		say_interrupted(j);
		j->stop_cell |= stop_flag(j);
	}
	if (j->stop_cell)
		refuse_writes(j, 1);
}

/* Train cell i of the grid in this rank's shard; how it ended, as an event
 * kind, with the code and message of a failure. */
static bv_collect_event_kind run_cell(job *j, int i, int *code, char *msg, size_t msize)
{
	j->cell_acc = NAN;
	j->stop_cell = 0;
	int rc = bv_plan_cell_run(&j->plan, j->plan.db, &j->cells[i], on_epoch, j);
	const int stopped = j->stop_cell || rc == BV_EINTR;
	if (j->stop_cell)
		refuse_writes(j, 0);
	j->stop_cell = 0;
	*code = rc;
	snprintf(msg, msize, "%s", rc ? bv_error_last() : "");
	return rc == 0 ? BV_EV_CELL_DONE : stopped ? BV_EV_CELL_STOPPED : BV_EV_CELL_FAILED;
}

/* Close this rank's shard (a plan that bv_plan_init never saw holds nothing). */
static void release(job *j)
{
	if (j->planned)
		bv_plan_release(&j->plan);
	j->planned = 0;
}

/* ---- the two roles ------------------------------------------------------------- */

/* Wait for rank 0's next message, past the stops that came late (a cell that
 * ended as rank 0 told it to stop); meanwhile pass on this rank's own stop. */
static void recv_order(job *j, wire *d)
{
	do {
		MPI_Request req;
		int flag = 0;
		MPI_Irecv(d, (int)sizeof *d, MPI_BYTE, 0, TAG_DOWN, MPI_COMM_WORLD, &req);
		MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
		while (!flag) {
			say_interrupted(j);
			mpi_nap(2);
			MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
		}
	} while (d->kind == DOWN_STOP);
	d->text[sizeof d->text - 1] = '\0';
}

/* Rank r > 0, after its shard's plan (rc) and map (done): the teacher, the
 * cells rank 0 hands it, its shard closed, and rank 0's result. */
static int rank_other(job *j, const char *shard_dir, int rc, const unsigned char *done)
{
	wire w = {.kind = UP_INIT, .code = rc};
	int from_rank0 = 0;
	if (rc)
		mpi_set_text(&w, bv_error_last());
	mpi_send_wire(&w, 0, TAG_UP);
	mpi_send_raw(done, rc ? 0 : j->n_cells, 0, TAG_MAP);
	rc = mpi_teacher_in(j, shard_dir, &from_rank0);
	if (rc && !from_rank0) {
		w = (wire){.kind = UP_ERROR, .code = rc};
		mpi_set_text(&w, bv_error_last());
		mpi_send_wire(&w, 0, TAG_UP);
	}
	while (rc == 0 && !from_rank0) {
		wire d = {.kind = UP_READY};
		mpi_send_wire(&d, 0, TAG_UP);
		recv_order(j, &d);
		if (d.kind != DOWN_CELL || d.cell < 0 || d.cell >= j->n_cells)
			break;
		wire e = {.cell = d.cell};
		const bv_collect_event_kind k = run_cell(j, d.cell, &e.code, e.text, sizeof e.text);
		e.kind = k == BV_EV_CELL_DONE ? UP_DONE : k == BV_EV_CELL_FAILED ? UP_FAILED : UP_STOPPED;
		e.test_acc = j->cell_acc;
		mpi_send_wire(&e, 0, TAG_UP);
	}
	release(j);
	/* after the bye rank 0 reads no more: a late stop is not said */
	j->said_interrupt = 1;
	w = (wire){.kind = UP_BYE};
	mpi_set_text(&w, j->my_nonce);
	mpi_send_wire(&w, 0, TAG_UP);
	recv_order(j, &w);
	if (w.kind == DOWN_SHIP) {
		if (w.code)
			mpi_ship_shard(j, shard_dir);
		recv_order(j, &w);
	}
	return w.code ? bv_error_set(w.code, "%s", w.text) : 0;
}

/* Rank 0: rank r's map ORed into done (NULL: taken off the wire only). */
static void recv_map(job *j, int r, unsigned char *done)
{
	MPI_Status st;
	int flag = 0, n = 0;
	for (MPI_Iprobe(r, TAG_MAP, MPI_COMM_WORLD, &flag, &st); !flag;
	     MPI_Iprobe(r, TAG_MAP, MPI_COMM_WORLD, &flag, &st))
		mpi_nap(2);
	MPI_Get_count(&st, MPI_BYTE, &n);
	unsigned char *buf = malloc((size_t)(n ? n : 1));
	static unsigned char sink[1];
	/* the message is there: the receive returns at once */
	MPI_Recv(buf ? buf : sink, buf ? n : 0, MPI_BYTE, r, TAG_MAP, MPI_COMM_WORLD,
		 MPI_STATUS_IGNORE);
	for (int i = 0; buf && done && i < n && i < j->n_cells; i++)
		done[i] |= buf[i];
	free(buf);
}

/* Rank 0's main thread while the others run: its own cells from the queue,
 * then the others' events until every rank has said bye. */
static void rank0_cells(job *j)
{
	int i, code, tick = 0;
	char msg[640];
	for (;;) {
		if (stop_flag(j))
			set_stopping(j, 1);
		if ((i = take(j)) < 0)
			break;
		bv_collect_event ev = {.kind = BV_EV_CELL_START, .slot = 0, .cell = &j->cells[i],
				       .n_epochs = j->cfg->epochs};
		emit(j, &ev);
		drain(j);
		const bv_collect_event_kind k = run_cell(j, i, &code, msg, sizeof msg);
		ev = (bv_collect_event){.kind = k, .slot = 0, .cell = &j->cells[i],
					.test_acc = j->cell_acc, .code = code, .message = msg};
		emit(j, &ev);
		drain(j);
	}
	for (;;) {
		pthread_mutex_lock(&j->lock);
		const int end = j->sched_done;
		pthread_mutex_unlock(&j->lock);
		drain(j);
		if (end)
			break;
		if (stop_flag(j))
			set_stopping(j, 1);
		if (tick++ % 10 == 0) {
			bv_collect_event ev = {.kind = BV_EV_IDLE, .slot = -1};
			emit(j, &ev);
		}
		mpi_nap(20);
	}
}

/* The received copies of shards, once merged. */
static void remove_received(const char *recv_dir)
{
	DIR *dir = opendir(recv_dir);
	struct dirent *e;
	char path[4096], sub[4400];
	if (!dir)
		return;
	while ((e = readdir(dir)) != NULL) {
		if (strncmp(e->d_name, "shard-", 6) != 0)
			continue;
		if (snprintf(path, sizeof path, "%s/%s", recv_dir, e->d_name) >= (int)sizeof path)
			continue;
		DIR *ck = opendir(path);
		struct dirent *f;
		while (ck && (f = readdir(ck)) != NULL) {
			if (f->d_name[0] == '.')
				continue;
			if (snprintf(sub, sizeof sub, "%s/%s", path, f->d_name) < (int)sizeof sub)
				unlink(sub);
		}
		if (ck) {
			closedir(ck);
			rmdir(path);
		} else {
			unlink(path);
		}
	}
	closedir(dir);
	rmdir(recv_dir);
}

/* Rank 0's result, once every rank has closed its shard: the first rank-level
 * error, an interrupt, or the merge into --db and the cells' failures. */
static int rank0_result(job *j, const char *shard_dir)
{
	if (j->err_code)
		return bv_error_set(j->err_code, "%s", j->err_msg);
	if (j->interrupted || stop_flag(j))
		return bv_error_set(BV_EINTR,
				    "interrupted: %d of %d cells done; run the same command again to resume",
				    j->tally.done, j->n_todo);
	char **shards = NULL, **got = NULL, recv_dir[4096];
	int n = 0, n_got = 0, rc;
	bv_merge_stats st;
	if ((rc = list_shards(&shards, &n, shard_dir)) != 0)
		return rc;
	snprintf(recv_dir, sizeof recv_dir, "%s/received", shard_dir);
	if (access(recv_dir, F_OK) == 0 && (rc = list_shards(&got, &n_got, recv_dir)) == 0 && n_got) {
		char **all = realloc(shards, sizeof *all * (size_t)(n + n_got));
		if (!all) {
			rc = bv_error_set(BV_ENOMEM, "out of memory");
		} else {
			shards = all;
			memcpy(shards + n, got, sizeof *got * (size_t)n_got);
			n += n_got;
			free(got);
			got = NULL;
			n_got = 0;
		}
	}
	if (rc == 0)
		rc = bv_merge(j->cfg->db_path, (const char *const *)shards, n, &st, NULL, NULL);
	free_list(shards, n);
	free_list(got, n_got);
	if (rc)
		return rc;
	/* the copies are in --db now; the shards themselves stay on their nodes */
	remove_received(recv_dir);
	if (!j->tally.failures) {
		/* a shard the merge did not see would leave its cells out: say so */
		unsigned char *in_db = calloc((size_t)(j->n_cells ? j->n_cells : 1), 1);
		int missing = 0;
		if (in_db) {
			mark_done_in(j, j->cfg->db_path, in_db);
			for (int i = 0; i < j->n_cells; i++)
				missing += !in_db[i];
			free(in_db);
		}
		if (missing)
			return bv_error_set(BV_ESTATE,
					    "%d of %d cells are done in shards but not in '%s' after the "
					    "merge; merge the shards of every node with bvtool merge",
					    missing, j->n_cells, j->cfg->db_path);
	}
	return bv_cell_tally_result(&j->tally, j->n_todo, j->cfg->db_path);
}

static int rank_zero(job *j, const char *shard_dir, int rc, unsigned char *done)
{
	pthread_t th;
	int threaded = 0;
	if (rc)
		mpi_rank_error(j, rc, bv_error_last());
	for (int r = 1; r < j->size; r++) {
		wire w;
		mpi_recv_raw(&w, (int)sizeof w, r, TAG_UP);
		w.text[sizeof w.text - 1] = '\0';
		if (w.code) {
			char msg[700];
			snprintf(msg, sizeof msg, "rank %d: %s", r, w.text);
			mpi_rank_error(j, w.code, msg);
		}
		recv_map(j, r, done);
	}
	if (!j->err_code) {
		char **shards = NULL;
		int n = 0;
		mark_done_in(j, j->cfg->db_path, done);
		if (list_shards(&shards, &n, shard_dir) == 0)
			for (int k = 0; k < n; k++) {
				const char *base = strrchr(shards[k], '/') + 1;
				if (shard_number(base) >= j->size)
					mark_done_in(j, shards[k], done);
			}
		free_list(shards, n);
		if ((rc = plan_todo(j, done)) != 0)
			mpi_rank_error(j, rc, bv_error_last());
	}
	mpi_teacher_out(j, j->n_todo > 0 || j->cfg->teacher_only);
	if (!j->err_code && j->size > 1 && pthread_create(&th, NULL, schedule_thread, j) == 0)
		threaded = 1;
	if (threaded || j->size == 1) {
		if (j->size == 1)
			j->sched_done = 1;
		if (!j->err_code)
			rank0_cells(j);
		if (threaded)
			pthread_join(th, NULL);
	} else {
		/* an error before the cells, or no thread: only the byes to gather */
		if (!j->err_code)
			mpi_rank_error(j, BV_EIO, "--mpi: cannot start the scheduler thread");
		schedule(j);
	}
	drain(j);
	bv_collect_event ev = {.kind = BV_EV_IDLE, .slot = -1};
	emit(j, &ev);
	release(j);
	rc = 0;
	if (!j->err_code && !j->interrupted && !stop_flag(j))
		rc = mpi_gather_shards(j, shard_dir);
	rc = rc ? rc : rank0_result(j, shard_dir);
	wire w = {.kind = DOWN_RESULT, .code = rc};
	if (rc)
		mpi_set_text(&w, bv_error_last());
	for (int r = 1; r < j->size; r++)
		mpi_send_wire(&w, r, TAG_DOWN);
	return rc;
}

/* ---- the entry point ---------------------------------------------------------- */

/* This rank's part up to its map: the grid, shard_dir, the shard's plan. */
static int prepare(job *j, const char *shard_dir, unsigned char **done)
{
	char path[4096];
	int rc;
	if ((rc = bv_grid_cells(j->cfg, &j->cells, &j->n_cells)) != 0)
		return rc;
	if (!(*done = calloc((size_t)(j->n_cells ? j->n_cells : 1), 1)) ||
	    !(j->busy = malloc(sizeof *j->busy * (size_t)j->size)) ||
	    !(j->nonce = calloc((size_t)j->size, sizeof *j->nonce)))
		return bv_error_set(BV_ENOMEM, "out of memory for the grid");
	for (int r = 0; r < j->size; r++)
		j->busy[r] = -1;
	if (mkdir(shard_dir, 0755) != 0 && errno != EEXIST)
		return bv_error_set(BV_EIO, "--shard-dir: cannot create '%s': %s", shard_dir,
				    strerror(errno));
	if (snprintf(path, sizeof path, "%s/shard-%d.db", shard_dir, j->rank) >= (int)sizeof path)
		return bv_error_set(BV_EINVAL, "--shard-dir: '%s' is too long", shard_dir);
	return open_shard(j, path, *done);
}

int bv_mpi_built(void)
{
	return 1;
}

int bv_mpi_collect(const bv_collect_cfg *cfg, const char *shard_dir, int *out_rank,
		   bv_collect_event_fn on_event, void *ctx)
{
	int inited = 0, finalized = 0, provided = 0, rc;
	unsigned char *done = NULL;
	job *j;
	*out_rank = 0;
	MPI_Finalized(&finalized);
	if (finalized)
		return bv_error_set(BV_ESTATE, "--mpi: MPI has been finalized in this process");
	MPI_Initialized(&inited);
	if (inited)
		MPI_Query_thread(&provided);
	else if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
		return bv_error_set(BV_EIO, "--mpi: MPI_Init_thread failed");
	if (!(j = calloc(1, sizeof *j))) {
		rc = bv_error_set(BV_ENOMEM, "out of memory");
		goto end;
	}
	j->cfg = cfg;
	j->on_event = on_event;
	j->ctx = ctx;
	pthread_mutex_init(&j->lock, NULL);
	MPI_Comm_rank(MPI_COMM_WORLD, &j->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &j->size);
	*out_rank = j->rank;
	/* the same on every rank: no message needed to agree on it */
	if (provided < MPI_THREAD_SERIALIZED) {
		rc = bv_error_set(BV_EINVAL,
				  "--mpi: this MPI gives thread support level %d; collect --mpi needs "
				  "MPI_THREAD_SERIALIZED (%d): rank 0 schedules from a thread of its own",
				  provided, MPI_THREAD_SERIALIZED);
		goto end;
	}
	rc = prepare(j, shard_dir, &done);
	rc = j->rank == 0 ? rank_zero(j, shard_dir, rc, done) : rank_other(j, shard_dir, rc, done);
end:
	if (j) {
		release(j);
		free(j->cells);
		free(j->todo);
		free(j->q);
		free(j->busy);
		free(j->nonce);
		pthread_mutex_destroy(&j->lock);
		free(j);
	}
	free(done);
	if (!inited) {
		/* all arrive at MPI_Finalize together, so that none spins in it; the
		 * message of rc survives (it is this thread's) */
		MPI_Request req;
		MPI_Ibarrier(MPI_COMM_WORLD, &req);
		wait_req(&req);
		MPI_Finalize();
	}
	return rc;
}
