/*
 * collect --mpi's private seam (train/runner_mpi.c: the messages, the
 * scheduler, the two roles; train/mpi_files.c: files over MPI, the teacher's
 * checkpoint and the shards rank 0 cannot read). Not included outside train/.
 */
#ifndef BV_MPI_INT_H
#define BV_MPI_INT_H

#include "collect_mpi.h"

#include <pthread.h>

#include <mpi.h>

enum { TAG_UP = 1, TAG_DOWN, TAG_MAP, TAG_BYTES };

typedef enum wire_kind {
	/* rank r -> rank 0 */
	UP_INIT,        /* code, text: r's plan; a TAG_MAP message follows (a byte per cell, 1 = done) */
	UP_ERROR,       /* code, text: r cannot go on (its teacher step failed) */
	UP_READY,       /* r wants a cell */
	UP_EPOCH,       /* cell, epoch, n_epochs, test_acc, seconds: recorded in r's shard */
	UP_DONE,        /* cell, test_acc */
	UP_FAILED,      /* cell, code, text */
	UP_STOPPED,     /* cell: ended by a stop; its row stays as the next collect redoes it */
	UP_INTERRUPTED, /* r's stop flag is set (SIGINT, SIGTERM) */
	UP_BYE,         /* text: r has closed its shard, and wrote this nonce beside it */
	UP_FILE,        /* text, size: a file of r's shard follows in pieces (TAG_BYTES);
			 * size -1: no more files */
	/* rank 0 -> rank r */
	DOWN_TEACHER,   /* code (0, or the error every rank returns), size: the checkpoint's
			 * bytes follow (TAG_BYTES) when size > 0; none when no cell is to run */
	DOWN_CELL,      /* cell: train it */
	DOWN_FINISH,    /* no cell for r: close the shard */
	DOWN_STOP,      /* stop the running cell */
	DOWN_SHIP,      /* code 1: send the shard's files (rank 0 cannot read them), 0: no need */
	DOWN_RESULT,    /* code, text: what bv_mpi_collect returns */
} wire_kind;

/* Every message but the maps and the checkpoint's bytes. The ranks run one
 * bvtool on one kind of machine, so the struct goes as bytes. */
typedef struct wire {
	int kind, cell, code, epoch, n_epochs;
	double test_acc, seconds;
	long long size;
	char text[640];
} wire;

/* A remote event queued by rank 0's scheduler for its main thread. */
typedef struct queued {
	bv_collect_event_kind kind;
	int slot, cell, epoch, n_epochs, code;
	double test_acc, seconds;
	char message[640];
} queued;

typedef struct job {
	const bv_collect_cfg *cfg;
	int rank, size;
	bv_plan plan;          /* this rank's shard */
	int planned;           /* plan holds something to release */
	bv_cell *cells;        /* (n_cells) the grid, run ids of this rank's shard */
	int n_cells;
	/* rank 0 */
	bv_collect_event_fn on_event;
	void *ctx;
	int *todo;             /* (n_todo) cell indices, costliest first */
	int n_todo, next;      /* next: the first not handed out (under lock) */
	int stopping;          /* no new cell; running ones stop (under lock) */
	int interrupted;       /* a stop flag was set on some rank (under lock) */
	int err_code;          /* the first rank-level error (under lock) ... */
	char err_msg[700];     /* ... and its message */
	pthread_mutex_t lock;
	queued *q;             /* remote events (under lock) */
	int n_q, cap_q;
	int sched_done;        /* every other rank said bye (under lock) */
	int *busy;             /* (size) the cell each rank runs, or -1 (the scheduler's) */
	char (*nonce)[64];     /* (size) each rank's nonce, from its bye */
	char my_nonce[64];     /* this rank's, written beside its shard */
	bv_cell_tally tally;   /* of the events emitted */
	/* the running cell of this rank */
	double cell_acc;
	int stop_cell;         /* stop it: its next write is refused */
	int said_interrupt;    /* r > 0: UP_INTERRUPTED sent */
} job;


/* runner_mpi.c: waiting without spinning, and the wire */
void mpi_nap(long ms);
void mpi_send_raw(const void *buf, int n, int to, int tag);
void mpi_send_wire(const wire *w, int to, int tag);
void mpi_recv_raw(void *buf, int n, int from, int tag);
void mpi_set_text(wire *w, const char *s);
/* rank 0: a rank-level error, the first kept (under the lock) */
void mpi_rank_error(job *j, int code, const char *msg);

/* mpi_files.c */
/* Rank 0: the teacher step when cells will run, then the header and the
 * checkpoint's bytes to every rank. */
int mpi_teacher_out(job *j, int need);
/* Rank r > 0: the checkpoint from rank 0, written beside r's shard. */
int mpi_teacher_in(job *j, const char *shard_dir, int *from_rank0);
/* Rank r > 0: its shard's files to rank 0, when rank 0 asks. */
void mpi_ship_shard(job *j, const char *shard_dir);
/* Rank 0: the shards of the ranks whose files it cannot read, into shard_dir/received/. */
int mpi_gather_shards(job *j, const char *shard_dir);

#endif
