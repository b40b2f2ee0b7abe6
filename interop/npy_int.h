/*
 * npy's private seam, shared by its files and by nothing else (not installed,
 * not included outside interop/):
 *   npy.c         reading: bv_npy_open, the reads, bv_npy_close, the .npz members
 *   npy_header.c  the header (bv_npy_parse_header, its scanner) and its messages
 *   npy_write.c   writing: bv_npy_writer_*, bv_npy_write
 * Names start with npy_.
 */
#ifndef BV_NPY_INT_H
#define BV_NPY_INT_H

#include <stddef.h>

#include "npy.h"

#define PREFIX_MAX 12 /* magic (6), version (2), header length (2 or 4) */

/* "\x93NUMPY", the first six bytes of every .npy (npy_header.c) */
extern const char npy_magic[6];

/* s[0..n) for a one-line message: printable ASCII, '?' for the rest, cut with "..." */
const char *npy_printable(char *out, size_t cap, const unsigned char *s, size_t n);
/* Magic, version and header length of data[0..len): the header's total size in *total. */
int npy_parse_prefix(bv_npy *a, const unsigned char *data, size_t len, size_t *total);

#endif
