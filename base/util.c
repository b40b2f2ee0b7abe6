/*
 * Small helpers shared by every layer: atomic writes, a byte buffer, whole-file
 * reads, a monotonic clock and checked number parsing.
 */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int bv_write_file_atomic(const char *path, const void *data, size_t size)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 32);
	int fd = -1, rc = 0;
	if (!tmp)
		return bv_error_set(BV_ENOMEM, "out of memory writing '%s'", path);
	if ((rc = bv_check_output(path)) != 0) {
		free(tmp);
		return rc;
	}
	/* The temporary name is predictable, so it is created afresh (O_EXCL, and
	 * O_NOFOLLOW for good measure), never opened through a link or a FIFO that
	 * someone planted there; a name that is taken is skipped, and left alone. */
	for (int k = 0; fd < 0 && k < 100; k++) {
		if (k == 0)
			snprintf(tmp, plen + 32, "%s.tmp%ld", path, (long)getpid());
		else
			snprintf(tmp, plen + 32, "%s.tmp%ld.%d", path, (long)getpid(), k);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST) {
			rc = bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
			free(tmp);
			return rc;
		}
	}
	if (fd < 0) {
		rc = bv_error_set(BV_EIO, "cannot write '%s': no free temporary name beside it", path);
		free(tmp);
		return rc;
	}
	const unsigned char *p = data;
	size_t left = size;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
			goto done;
		}
		p += w;
		left -= (size_t)w;
	}
	if (fsync(fd) != 0) {
		rc = bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
		goto done;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
		goto done;
	}
done:
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

void bv_buf_init(bv_buf *b)
{
	memset(b, 0, sizeof *b);
}

void bv_buf_release(bv_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

void bv_buf_append(bv_buf *b, const void *data, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *d = realloc(b->data, cap);
		if (!d) {
			b->failed = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, n);
	b->len += n;
}

void bv_buf_u32(bv_buf *b, uint32_t v)
{
	unsigned char x[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
	bv_buf_append(b, x, 4);
}

void bv_buf_u64(bv_buf *b, uint64_t v)
{
	bv_buf_u32(b, (uint32_t)(v & 0xffffffffu));
	bv_buf_u32(b, (uint32_t)(v >> 32));
}

void bv_buf_f32(bv_buf *b, const float *v, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	bv_buf_append(b, v, n * sizeof(float));
#else
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		bv_buf_u32(b, u);
	}
#endif
}

int bv_open_input(int *out_fd, size_t *out_size, const char *path)
{
	struct stat st;
	*out_fd = -1;
	*out_size = 0;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return bv_error_set(BV_EIO, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return bv_error_set(BV_EIO, "cannot open '%s': %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return bv_error_set(BV_EIO, "'%s' is not a regular file", path);
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
		int e = errno;
		close(fd);
		return bv_error_set(BV_EIO, "cannot open '%s': %s", path, strerror(e));
	}
	*out_fd = fd;
	*out_size = (size_t)st.st_size;
	return 0;
}

int bv_check_output(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return 0; /* absent (or a dangling link, which rename replaces): written anew */
	if (!S_ISREG(st.st_mode))
		return bv_error_set(BV_EIO, "'%s' is not a regular file; refusing to replace it", path);
	return 0;
}

int bv_check_output_dir(const char *path)
{
	struct stat st;
	const char *slash = strrchr(path, '/');
	char *dir;
	int rc = 0;
	if (!slash)
		return 0; /* in the working directory */
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (!(dir = malloc(n + 1)))
		return bv_error_set(BV_ENOMEM, "out of memory writing '%s'", path);
	memcpy(dir, path, n);
	dir[n] = '\0';
	if (stat(dir, &st) != 0)
		rc = errno == ENOENT ? bv_error_set(BV_EIO, "cannot write '%s': directory '%s' does not exist", path, dir)
				     : bv_error_set(BV_EIO, "cannot write '%s': %s", path, strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		rc = bv_error_set(BV_EIO, "cannot write '%s': '%s' is not a directory", path, dir);
	free(dir);
	return rc;
}

int bv_read_file(unsigned char **out, size_t *out_len, const char *path)
{
	int fd;
	size_t size, len = 0;
	*out = NULL;
	*out_len = 0;
	int rc = bv_open_input(&fd, &size, path);
	if (rc)
		return rc;
	/* no more than the size the file had when opened: a file that grows while
	 * it is read is cut there, never read without end */
	unsigned char *data = malloc(size ? size : 1);
	if (!data) {
		rc = bv_error_set(BV_ENOMEM, "out of memory reading '%s' (%zu bytes)", path, size);
		goto done;
	}
	while (len < size) {
		ssize_t r = read(fd, data + len, size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = bv_error_set(BV_EIO, "cannot read '%s': %s", path, strerror(errno));
			goto done;
		}
		if (r == 0)
			break; /* shrank while read: what is there */
		len += (size_t)r;
	}
	*out = data;
	*out_len = len;
	data = NULL;
done:
	free(data);
	close(fd);
	return rc;
}

double bv_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/*
 * The number grammar of flags and spec strings (docs/cli.md): plain decimal
 * only, so that what a user reads is what bvtool uses. strtod and strtol alone
 * also take leading white space, hexadecimal ("0x10" is 16), "inf", "nan" and
 * "infinity"; these scanners admit only
 *   whole:  [+-]? digit+
 *   number: [+-]? (digit+ ('.' digit*)? | '.' digit+) ([eE] [+-]? digit+)?
 * and the conversion then must consume exactly that.
 */
static size_t scan_digits(const char *s)
{
	size_t n = 0;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	return n;
}

static int plain_whole(const char *s)
{
	if (*s == '+' || *s == '-')
		s++;
	size_t n = scan_digits(s);
	return n > 0 && s[n] == '\0';
}

static int plain_number(const char *s)
{
	if (*s == '+' || *s == '-')
		s++;
	size_t n = scan_digits(s);
	s += n;
	if (*s == '.') {
		size_t f = scan_digits(s + 1);
		if (n == 0 && f == 0)
			return 0;
		s += 1 + f;
	} else if (n == 0) {
		return 0;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		size_t e = scan_digits(s);
		if (e == 0)
			return 0;
		s += e;
	}
	return *s == '\0';
}

int bv_parse_double(double *out, const char *s, double lo, double hi, const char *what)
{
	char *end;
	if (!s || !plain_number(s))
		return bv_error_set(BV_EINVAL, "%s: expected a number, got '%s'", what, s ? s : "");
	errno = 0;
	double v = strtod(s, &end);
	if (*end != '\0' || errno == ERANGE || !isfinite(v))
		return bv_error_set(BV_EINVAL, "%s: expected a number, got '%s'", what, s);
	if (v == 0)
		v = 0.0; /* -0 is 0: no negative zero in a setting or its fingerprint */
	if (v < lo || v > hi)
		return bv_error_set(BV_EINVAL, "%s: %s is out of range (%g to %g)", what, s, lo, hi);
	*out = v;
	return 0;
}

int bv_parse_long(long *out, const char *s, long lo, long hi, const char *what)
{
	char *end;
	if (!s || !plain_whole(s))
		return bv_error_set(BV_EINVAL, "%s: expected a whole number, got '%s'", what, s ? s : "");
	errno = 0;
	long v = strtol(s, &end, 10);
	if (*end != '\0' || errno == ERANGE)
		return bv_error_set(BV_EINVAL, "%s: expected a whole number, got '%s'", what, s);
	if (v < lo || v > hi)
		return bv_error_set(BV_EINVAL, "%s: %s is out of range (%ld to %ld)", what, s, lo, hi);
	*out = v;
	return 0;
}

const char *const bv_method_names[BV_N_METHOD_NAMES] = {"teacher", "ce", "kd", "wsl", "kd-filter"};

void bv_number_format(char *out, size_t size, double v)
{
	/* from 6 digits, so that every value %g already wrote exactly reads the same */
	for (int digits = 6; digits <= 17; digits++) {
		snprintf(out, size, "%.*g", digits, v);
		if (strtod(out, NULL) == v || isnan(v))
			return;
	}
}
