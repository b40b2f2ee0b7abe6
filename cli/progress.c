/*
 * The terminal display of `bvtool collect` (progress.h): a struct with the
 * state of every slot and the counts, updated by the engine's events in
 * cli_progress_event, and one place that draws the live block, draw(). Lines
 * go through cli_progress_say, which erases the block first, so that the
 * block is always at the bottom and the lines stay above it.
 */
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void cli_progress_init(cli_progress *p, int tty)
{
	*p = (cli_progress){0};
	p->tty = tty;
	p->t0 = bv_now();
}

int cli_progress_start(cli_progress *p, int n_slots, int n_cells, int n_epochs)
{
	free(p->slots);
	p->n_slots = 0;
	if (!(p->slots = calloc((size_t)n_slots, sizeof *p->slots)))
		return bv_error_set(BV_ENOMEM, "out of memory");
	p->n_slots = n_slots;
	p->n_cells = n_cells;
	p->total_epochs = n_cells * n_epochs;
	return 0;
}

void cli_progress_release(cli_progress *p)
{
	free(p->slots);
	p->slots = NULL;
	p->n_slots = 0;
}

/* Erase the live block: back to its top, and clear to the end of the screen. */
static void erase(cli_progress *p)
{
	if (p->tty && p->n_lines > 0) {
		printf("\033[%dA\r\033[J", p->n_lines);
		p->n_lines = 0;
	}
}

void cli_progress_say(cli_progress *p, const char *fmt, ...)
{
	va_list ap;
	erase(p);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* The live block (tty only): a row per busy slot, then the bar. */
static void draw(cli_progress *p)
{
	if (!p->tty)
		return;
	erase(p);
	for (int i = 0; i < p->n_slots; i++) {
		const cli_progress_slot *s = &p->slots[i];
		char label[64];
		if (!s->busy)
			continue;
		bv_cell_label(label, sizeof label, &s->cell);
		printf("\r\033[K  %-22s epoch %3d/%-3d", label, s->epoch, s->n_epochs);
		if (s->epoch > 0)
			printf("  test %6.2f%%", 100 * s->test_acc);
		printf("  %5.0fs\n", bv_now() - s->started);
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

/* The slot of a cell's event, or NULL outside the slots. */
static cli_progress_slot *slot_of(cli_progress *p, const bv_collect_event *ev)
{
	return ev->slot >= 0 && ev->slot < p->n_slots ? &p->slots[ev->slot] : NULL;
}

void cli_progress_event(void *ctx, const bv_collect_event *ev)
{
	cli_progress *p = ctx;
	cli_progress_slot *s = slot_of(p, ev);
	const bv_epoch_stats *st = ev->stats;
	char label[64] = "";
	if (ev->cell)
		bv_cell_label(label, sizeof label, ev->cell);
	switch (ev->kind) {
	case BV_EV_TEACHER_LOADED:
		cli_progress_say(p, "teacher: %s from %s\n", ev->spec, ev->path);
		break;
	case BV_EV_TEACHER_TRAINING:
		cli_progress_say(p, "teacher: training %s for %d epochs\n", ev->spec, ev->n_epochs);
		break;
	case BV_EV_TEACHER_EPOCH:
		cli_progress_say(p, "teacher: epoch %d/%d  loss %.4f  train %.2f%%  test %.2f%%  %.1fs\n",
				 st->epoch, st->n_epochs, st->loss, 100 * st->train_acc,
				 100 * st->test_acc, st->seconds);
		break;
	case BV_EV_TEACHER_READY:
		cli_progress_say(p, "teacher: %s, test accuracy %.2f%%\n", ev->spec, 100 * ev->test_acc);
		break;
	case BV_EV_CELL_START:
		if (s)
			*s = (cli_progress_slot){1, *ev->cell, 0, ev->n_epochs, NAN, bv_now()};
		break;
	case BV_EV_CELL_EPOCH:
		if (s) {
			s->epoch = ev->epoch;
			s->test_acc = ev->test_acc;
		}
		p->done_epochs++;
		if (!p->tty)
			cli_progress_say(p, "%s: epoch %d/%d  test %.2f%%  %.1fs\n", label, ev->epoch,
					 ev->n_epochs, 100 * ev->test_acc, ev->seconds);
		break;
	case BV_EV_CELL_DONE:
		p->done_cells++;
		if (s)
			s->busy = 0;
		cli_progress_say(p, "done: %s  test accuracy %.2f%%\n", label, 100 * ev->test_acc);
		break;
	case BV_EV_CELL_FAILED:
		if (s)
			s->busy = 0;
		cli_progress_say(p, "failed: %s: %s\n", label, ev->message);
		break;
	case BV_EV_CELL_STOPPED:
		if (s)
			s->busy = 0;
		break;
	case BV_EV_IDLE:
		draw(p);
		break;
	}
}
