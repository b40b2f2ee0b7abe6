/*
 * progress: the terminal display of `bvtool collect`. It consumes the collect
 * engine's events (train/collect.h) and shows them: on a terminal, a live
 * block at the bottom (one row per busy slot: the cell, its epoch, its test
 * accuracy, its time; then a bar with the cells done and an estimate of the
 * time left), redrawn whenever the runner waits, with every other line
 * printed above it; elsewhere (a pipe, a file), one line per event.
 */
#ifndef BV_CLI_PROGRESS_H
#define BV_CLI_PROGRESS_H

#include "collect.h"

typedef struct cli_progress_slot {
	int busy;
	bv_cell cell;
	int epoch, n_epochs;
	double test_acc;    /* of its last epoch, NAN before */
	double started;     /* bv_now() at its start */
} cli_progress_slot;

typedef struct cli_progress {
	int tty;            /* stdout is a terminal: the live block */
	int n_lines;        /* lines of the block drawn last (tty) */
	cli_progress_slot *slots;
	int n_slots;
	int n_cells, done_cells;
	int total_epochs, done_epochs;
	double t0;          /* the start of the command */
} cli_progress;

/* Start the clock; tty: draw the live block. */
void cli_progress_init(cli_progress *p, int tty);
/* The cells about to run: n_slots at once (runner->n_slots), n_cells of
 * n_epochs each. BV_ENOMEM when the slots cannot be allocated. */
int cli_progress_start(cli_progress *p, int n_slots, int n_cells, int n_epochs);
void cli_progress_release(cli_progress *p);

/* A line on stdout, above the live block (tty) or as it is. */
void cli_progress_say(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A bv_collect_event_fn; ctx is the cli_progress. */
void cli_progress_event(void *ctx, const bv_collect_event *ev);

#endif
