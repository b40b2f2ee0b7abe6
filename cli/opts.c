/*
 * Option tables: parsing (--name VALUE or --name=VALUE, numbers plain decimal
 * and checked in full by bv_parse_long / bv_parse_double: no white space, hex,
 * inf or nan; ranges inclusive), help printing with the defaults read from the
 * variables, and the mapping of BV_E* codes to exit statuses.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

static const cli_cmd *current;

void cli_set_command(const cli_cmd *cmd)
{
	current = cmd;
}

static void short_usage(void)
{
	if (current)
		fprintf(stderr, "usage: bvtool %s %s\n", current->name, current->usage);
	else
		fprintf(stderr, "usage: bvtool COMMAND [options] (bvtool help lists the commands)\n");
}

/* "bvtool CMD: " (or "bvtool: " outside a command) before a message */
static void error_line(const char *msg)
{
	if (current)
		fprintf(stderr, "bvtool %s: %s\n", current->name, msg);
	else
		fprintf(stderr, "bvtool: %s\n", msg);
}

static int misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int misuse(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	error_line(msg);
	short_usage();
	return BV_EXIT_USAGE;
}

static const cli_opt *find_opt(const cli_opt *opts, const char *name, size_t len)
{
	for (const cli_opt *o = opts; o && o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

static int set_value(const cli_opt *o, const char *v)
{
	if (o->type == OPT_STR) {
		*(const char **)o->ptr = v;
		return 0;
	}
	if (o->type == OPT_INT) {
		long x;
		if (bv_parse_long(&x, v, o->positive ? 1 : (long)o->lo, (long)o->hi, o->name) != 0)
			return -1;
		*(int *)o->ptr = (int)x;
		return 0;
	}
	double x;
	if (bv_parse_double(&x, v, o->positive ? -1e308 : o->lo, o->hi, o->name) != 0)
		return -1;
	if (o->positive && !(x > 0)) {
		bv_error_set(BV_EINVAL, "%s: must be greater than 0, got '%s'", o->name, v);
		return -1;
	}
	*(double *)o->ptr = x;
	return 0;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv)
{
	return cli_parse_args(cmd, argc, argv, NULL, 0, NULL);
}

int cli_parse_args(const cli_cmd *cmd, int argc, char **argv, char **pos, int max_pos, int *n_pos)
{
	int np = 0, options = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (options && strcmp(a, "--") == 0) {
			options = 0;
			continue;
		}
		if (options && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
			cli_help(stdout, cmd);
			return -1;
		}
		if (!options || strncmp(a, "--", 2) != 0) {
			if (np >= max_pos)
				return misuse("unexpected argument '%s'", a);
			pos[np++] = argv[i];
			continue;
		}
		const char *eq = strchr(a, '=');
		size_t len = eq ? (size_t)(eq - a) : strlen(a);
		const cli_opt *o = find_opt(cmd->opts, a, len);
		if (!o)
			return misuse("unknown option '%.*s'", (int)len, a);
		if (o->type == OPT_FLAG) {
			if (eq)
				return misuse("%s takes no value", o->name);
			*(int *)o->ptr = 1;
			continue;
		}
		const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
		if (!v)
			return misuse("%s needs a value (%s)", o->name, o->metavar ? o->metavar : "VALUE");
		if (set_value(o, v) != 0)
			return misuse("%s", bv_error_last());
	}
	if (n_pos)
		*n_pos = np;
	return 0;
}

int cli_usage_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return misuse("%s", msg);
}

void cli_help(FILE *f, const cli_cmd *cmd)
{
	fprintf(f, "usage: bvtool %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
	if (!cmd->opts || !cmd->opts->name)
		return;
	fprintf(f, "\noptions:\n");
	for (const cli_opt *o = cmd->opts; o->name; o++) {
		char left[64], def[160] = "";
		snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "",
			 o->metavar ? o->metavar : "");
		/* a default that depends on the machine: what it is, and its value
		 * here (docs/cli.md shows "here N": tests/cli_docs.sh reads it so) */
		if (o->cpus_default) {
			fprintf(f, "  %-22s %s (default: the CPUs this process may use, here %d)\n", left,
				o->help, *(int *)o->ptr);
			continue;
		}
		switch (o->type) {
		case OPT_STR:
			if (*(const char **)o->ptr)
				snprintf(def, sizeof def, " (default: %s)", *(const char **)o->ptr);
			break;
		case OPT_INT:
			snprintf(def, sizeof def, " (default: %d)", *(int *)o->ptr);
			break;
		case OPT_DOUBLE:
			snprintf(def, sizeof def, " (default: %g)", *(double *)o->ptr);
			break;
		case OPT_FLAG:
			break;
		}
		fprintf(f, "  %-22s %s%s\n", left, o->help, def);
	}
}

int cli_exit_code(int code)
{
	switch (code) {
	case BV_OK:
		return BV_EXIT_OK;
	case BV_EINVAL:
		return BV_EXIT_USAGE;
	case BV_EIO:
		return BV_EXIT_IO;
	case BV_EFORMAT:
	case BV_EMISMATCH:
		return BV_EXIT_INPUT;
	case BV_EDIVERGED:
		return BV_EXIT_DIVERGED;
	case BV_EDB:
		return BV_EXIT_DB;
	case BV_EPARTIAL:
		return BV_EXIT_PARTIAL;
	case BV_ESTATE:
		return BV_EXIT_STATE;
	case BV_EINTR:
		return BV_EXIT_INTERRUPTED;
	default:
		return BV_EXIT_INTERNAL;
	}
}

int cli_fail(int code)
{
	int status = cli_exit_code(code);
	error_line(bv_error_last()[0] ? bv_error_last() : "unknown error");
	if (status == BV_EXIT_USAGE)
		short_usage();
	return status;
}
