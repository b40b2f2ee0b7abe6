/*
 * The database's vocabulary: the one table of run methods (named from base's
 * bv_method_names) and run statuses, and their names. Inside the program a
 * method or a status is an enum of db.h; its name exists only where it meets
 * SQL (a row read or written, a query's text) and in messages, and every such
 * name comes from here. The schema's CHECK constraints (schema.c) are frozen
 * migration text and spell the same names out; tests/test_contract.c holds
 * them to this table, and nn's training methods (nn/loss.c, named from the
 * same bv_method_names) too.
 */
#include <stdio.h>
#include <string.h>

#include "db.h"

/* name: the index of its name in base's bv_method_names; soft: trained from
 * the teacher at a temperature (the runs with one) */
static const struct {
	int name, soft;
} methods[] = {
	[BV_RUN_TEACHER] = {0, 0},
	[BV_RUN_CE] = {1, 0},
	[BV_RUN_KD] = {2, 1},
	[BV_RUN_WSL] = {3, 1},
	[BV_RUN_KD_FILTER] = {4, 1},
};
_Static_assert(BV_ARRAY_LEN(methods) == BV_RUN_N_METHODS, "one name per bv_run_method");
_Static_assert((int)BV_RUN_N_METHODS == (int)BV_N_METHOD_NAMES, "every method name is a run's");

static const char *const statuses[] = {
	[BV_RUN_PENDING] = "pending",
	[BV_RUN_RUNNING] = "running",
	[BV_RUN_DONE] = "done",
	[BV_RUN_FAILED] = "failed",
};
_Static_assert(BV_ARRAY_LEN(statuses) == BV_RUN_N_STATUSES, "one name per bv_run_status");

const char *bv_db_method_name(bv_run_method m)
{
	return (unsigned)m < BV_RUN_N_METHODS ? bv_method_names[methods[m].name] : "?";
}

const char *bv_db_status_name(bv_run_status s)
{
	return (unsigned)s < BV_RUN_N_STATUSES ? statuses[s] : "?";
}

int bv_db_method_soft(bv_run_method m)
{
	return (unsigned)m < BV_RUN_N_METHODS && methods[m].soft;
}

int bv_db_method_parse(bv_run_method *out, const char *s)
{
	char list[128];
	for (int i = 0; s && i < BV_RUN_N_METHODS; i++)
		if (strcmp(s, bv_method_names[methods[i].name]) == 0) {
			*out = (bv_run_method)i;
			return 0;
		}
	return bv_error_set(BV_EINVAL, "unknown method '%s' (expected %s)", s ? s : "",
			    bv_db_methods_text(list, sizeof list, bv_db_methods_mask(-1), "", ", ",
					       " or "));
}

int bv_db_status_parse(bv_run_status *out, const char *s)
{
	char list[128];
	for (int i = 0; s && i < BV_RUN_N_STATUSES; i++)
		if (strcmp(s, statuses[i]) == 0) {
			*out = (bv_run_status)i;
			return 0;
		}
	return bv_error_set(BV_EINVAL, "unknown run status '%s' (expected %s)", s ? s : "",
			    bv_db_statuses_text(list, sizeof list, BV_RUN_ALL_STATUSES, "", ", ",
						" or "));
}

unsigned bv_db_methods_mask(int soft)
{
	unsigned mask = 0;
	for (int i = 0; i < BV_RUN_N_METHODS; i++)
		if (soft < 0 || methods[i].soft == soft)
			mask |= 1u << i;
	return mask;
}

int bv_db_soft_methods(bv_run_method *out)
{
	int n = 0;
	for (int i = 0; i < BV_RUN_N_METHODS; i++)
		if (methods[i].soft)
			out[n++] = (bv_run_method)i;
	return n;
}

/* names[i] for the bits i of mask, each in quote marks, joined by sep, the
 * last two by last */
static const char *join(char *out, size_t size, const char *(*name)(int), int n, unsigned mask,
			const char *quote, const char *sep, const char *last)
{
	size_t len = 0;
	int left = 0;
	for (int i = 0; i < n; i++)
		left += (mask >> i) & 1;
	out[0] = '\0';
	for (int i = 0; i < n && len < size; i++) {
		if (!((mask >> i) & 1))
			continue;
		left--;
		len += (size_t)snprintf(out + len, size - len, "%s%s%s%s", quote, name(i), quote,
					left == 0 ? "" : left == 1 ? last : sep);
	}
	return out;
}

static const char *method_at(int i)
{
	return bv_method_names[methods[i].name];
}

static const char *status_at(int i)
{
	return statuses[i];
}

const char *bv_db_methods_text(char *out, size_t size, unsigned mask, const char *quote,
			       const char *sep, const char *last)
{
	return join(out, size, method_at, BV_RUN_N_METHODS, mask, quote, sep, last);
}

const char *bv_db_statuses_text(char *out, size_t size, unsigned mask, const char *quote,
				const char *sep, const char *last)
{
	return join(out, size, status_at, BV_RUN_N_STATUSES, mask, quote, sep, last);
}
