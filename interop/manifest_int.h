/*
 * The manifest's private seam, shared by its files and by nothing else (not
 * installed, not included outside interop/):
 *   manifest.c        reading (bv_manifest_parse, _read, _free, _file), the
 *                     tables of keys and the helpers below
 *   manifest_write.c  comparing (bv_manifest_compare) and writing (bv_manifest_write)
 * Names start with mf_, as the public types' bv_mf_.
 */
#ifndef BV_MANIFEST_INT_H
#define BV_MANIFEST_INT_H

#include <stddef.h>

#include "manifest.h"

/* characters of a value a message shows (then "...") */
#define SHOW_CHARS 40
/* a key path ("runs[12].metrics.test_acc[3]", a user's key cut to SHOW_CHARS) */
#define KEY_MAX 256
#define SHOW_MAX 256

/* The keys each object of the layout defines, in the order they are written
 * (NULL-terminated); any other key is an extra. */
extern const char *const mf_top_keys[];
extern const char *const mf_run_keys[];
extern const char *const mf_teacher_keys[];
enum { N_METRICS = 7 };
/* The metrics' names but "epoch", in the order of bv_mf_metrics' columns. */
extern const char *const mf_metric_names[N_METRICS];

/* 1 when s is one of the NULL-terminated list (list NULL: none). */
int mf_listed(const char *const *list, const char *s);
/* The metrics column c (in mf_metric_names' order) of mt. */
const double *mf_metric_col_c(const bv_mf_metrics *mt, int c);
/* The code point of the UTF-8 sequence at s (n > 0 bytes), its length in *len; -1 if invalid. */
long mf_utf8_next(const unsigned char *s, size_t n, int *len);
/* s (n bytes) for a one-line message, into out: non-printable as '?', cut after max characters. */
const char *mf_show_text(char *out, size_t size, const char *s, size_t n, int max);
/* "<parent>.<name>" into out (KEY_MAX bytes), name alone at the top level. */
const char *mf_key(char *out, const char *parent, const char *name);
/* "<parent>[i]" into out (KEY_MAX bytes). */
const char *mf_key_at(char *out, const char *parent, size_t i);

#endif
