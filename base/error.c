/*
 * The per-thread error buffer behind bv_error_set / bv_error_last.
 */
#include "base.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char err_msg[1024];
static _Thread_local int err_code;

int bv_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_msg, sizeof err_msg, fmt, ap);
	va_end(ap);
	err_code = code;
	return code;
}

int bv_error_prefix(int code, const char *fmt, ...)
{
	char old[sizeof err_msg];
	va_list ap;
	memcpy(old, err_msg, sizeof old);
	va_start(ap, fmt);
	int n = vsnprintf(err_msg, sizeof err_msg, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof err_msg)
		snprintf(err_msg + n, sizeof err_msg - (size_t)n, ": %s", old);
	err_code = code;
	return code;
}

const char *bv_error_last(void)
{
	return err_msg;
}

int bv_error_code(void)
{
	return err_code;
}

void bv_error_clear(void)
{
	err_msg[0] = '\0';
	err_code = 0;
}
