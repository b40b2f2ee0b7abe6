/*
 * collect --mpi: files over MPI (mpi_int.h). The teacher's checkpoint goes from
 * rank 0 to every rank, and the shard of a rank whose --shard-dir rank 0
 * cannot read (node-local storage) comes to rank 0, in pieces of at most
 * CHUNK bytes, every wait a test between naps as in runner_mpi.c.
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

/* ---- the teacher ---------------------------------------------------------------- */

/* The checkpoint goes in pieces: no count over INT_MAX, and a rank that cannot
 * hold it still takes every piece off the wire. */
#define CHUNK (4 << 20)
static unsigned char chunk_buf[CHUNK]; /* a piece on its way, on the thread that talks MPI */

/* Rank 0: the teacher step when cells will run (or --teacher-only), then to every
 * rank the header (code: the job's first error, which ends it) and the
 * checkpoint's bytes. */
int mpi_teacher_out(job *j, int need)
{
	unsigned char *bytes = NULL;
	size_t len = 0;
	char path[4096];
	wire w = {.kind = DOWN_TEACHER};
	int rc = 0;
	if (!j->err_code && need) {
		if ((rc = bv_plan_teacher(&j->plan, j->on_event, j->ctx)) == 0) {
			snprintf(path, sizeof path, "%s/%s.ckpt/teacher.ckpt", j->plan.db_dir,
				 j->plan.db_base);
			rc = bv_read_file(&bytes, &len, path);
		}
		if (rc)
			mpi_rank_error(j, rc, bv_error_last());
	}
	w.code = j->err_code;
	w.size = j->err_code ? 0 : (long long)len;
	mpi_set_text(&w, j->err_msg);
	for (int r = 1; r < j->size; r++)
		mpi_send_wire(&w, r, TAG_DOWN);
	if (w.size > 0 && j->size > 1) {
		const int n_chunks = (int)((len + CHUNK - 1) / CHUNK);
		const int n_req = n_chunks * (j->size - 1);
		MPI_Request *reqs = malloc(sizeof *reqs * (size_t)n_req);
		int k = 0, all = 0;
		for (int r = 1; r < j->size; r++)
			for (size_t off = 0; off < len; off += CHUNK) {
				const int n = (int)(len - off < CHUNK ? len - off : CHUNK);
				if (reqs)
					MPI_Isend(bytes + off, n, MPI_BYTE, r, TAG_BYTES, MPI_COMM_WORLD,
						  &reqs[k++]);
				else
					mpi_send_raw(bytes + off, n, r, TAG_BYTES);
			}
		while (reqs && !all) {
			MPI_Testall(n_req, reqs, &all, MPI_STATUSES_IGNORE);
			if (!all)
				mpi_nap(2);
		}
		free(reqs);
	}
	free(bytes);
	return j->err_code;
}

/* Rank r > 0: the header, and the teacher's bytes written beside its shard and
 * recorded in it. 0 when the cells may run; else the job's error (rank 0's:
 * *from_rank0 = 1) or this rank's own. */
int mpi_teacher_in(job *j, const char *shard_dir, int *from_rank0)
{
	wire w;
	char path[4096];
	unsigned char *bytes = NULL;
	int rc = 0;
	*from_rank0 = 0;
	/* rank 0 may train the teacher for a long time: recv_raw waits in naps */
	mpi_recv_raw(&w, (int)sizeof w, 0, TAG_DOWN);
	w.text[sizeof w.text - 1] = '\0';
	if (w.code) {
		*from_rank0 = 1;
		return bv_error_set(w.code, "%s", w.text);
	}
	if (w.size <= 0)
		return 0;
	if (!(bytes = malloc((size_t)w.size)))
		rc = bv_error_set(BV_ENOMEM, "out of memory for the teacher's checkpoint");
	for (long long off = 0; off < w.size; off += CHUNK) {
		const int n = (int)(w.size - off < CHUNK ? w.size - off : CHUNK);
		mpi_recv_raw(bytes ? bytes + off : chunk_buf, n, 0, TAG_BYTES);
	}
	if (rc)
		return rc;
	if (snprintf(path, sizeof path, "%s/shard-%d.teacher.ckpt", shard_dir, j->rank) >=
	    (int)sizeof path)
		rc = bv_error_set(BV_EINVAL, "--shard-dir: '%s' is too long", shard_dir);
	if (rc == 0)
		rc = bv_write_file_atomic(path, bytes, (size_t)w.size);
	free(bytes);
	if (rc == 0) {
		j->plan.cfg.teacher_ckpt = path;
		rc = bv_plan_teacher(&j->plan, NULL, NULL);
		j->plan.cfg.teacher_ckpt = NULL; /* path is this function's */
	}
	return rc;
}

/* ---- a shard rank 0 cannot see: its files over MPI ------------------------------ */

/* Rank r: one file (name: relative to shard_dir) in pieces; a read error
 * still sends every promised byte (zeros) and is returned. */
static int ship_file(const char *shard_dir, const char *name)
{
	char path[4096];
	struct stat st;
	int fd, rc = 0;
	snprintf(path, sizeof path, "%s/%s", shard_dir, name);
	if ((fd = open(path, O_RDONLY)) < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return 0; /* gone (a -wal a close removed): nothing to send */
	}
	wire w = {.kind = UP_FILE, .size = (long long)st.st_size};
	mpi_set_text(&w, name);
	mpi_send_wire(&w, 0, TAG_UP);
	for (long long off = 0; off < w.size; off += CHUNK) {
		const int n = (int)(w.size - off < CHUNK ? w.size - off : CHUNK);
		int have = 0;
		while (rc == 0 && have < n) {
			ssize_t got = read(fd, chunk_buf + have, (size_t)(n - have));
			if (got <= 0)
				rc = bv_error_set(BV_EIO, "cannot read '%s': %s", path,
						  got < 0 ? strerror(errno) : "it shrank");
			else
				have += (int)got;
		}
		if (have < n)
			memset(chunk_buf + have, 0, (size_t)(n - have));
		mpi_send_raw(chunk_buf, n, 0, TAG_BYTES);
	}
	close(fd);
	return rc;
}

/* Rank r: its shard database and the checkpoints beside it, then the end
 * (size -1, with the first error). */
void mpi_ship_shard(job *j, const char *shard_dir)
{
	char base[64], name[512];
	int rc = 0;
	snprintf(base, sizeof base, "shard-%d.db", j->rank);
	rc = ship_file(shard_dir, base);
	snprintf(name, sizeof name, "%s-wal", base);
	if (rc == 0)
		rc = ship_file(shard_dir, name);
	snprintf(name, sizeof name, "%s/%s.ckpt", shard_dir, base);
	DIR *dir = rc == 0 ? opendir(name) : NULL;
	struct dirent *e;
	while (dir && rc == 0 && (e = readdir(dir)) != NULL) {
		const size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".ckpt") != 0)
			continue;
		snprintf(name, sizeof name, "%s.ckpt/%s", base, e->d_name);
		rc = ship_file(shard_dir, name);
	}
	if (dir)
		closedir(dir);
	wire w = {.kind = UP_FILE, .size = -1, .code = rc};
	if (rc)
		mpi_set_text(&w, bv_error_last());
	mpi_send_wire(&w, 0, TAG_UP);
}

/* "shard-<r>.db", "shard-<r>.db-wal" or "shard-<r>.db.ckpt/<file>.ckpt": what rank
 * r may send (the name becomes a path under shard_dir/received). */
static int ship_name_ok(const char *name, int r)
{
	char base[64];
	const int lb = snprintf(base, sizeof base, "shard-%d.db", r);
	if (strncmp(name, base, (size_t)lb) != 0)
		return 0;
	const char *rest = name + lb;
	if (!*rest || strcmp(rest, "-wal") == 0)
		return 1;
	if (strncmp(rest, ".ckpt/", 6) != 0)
		return 0;
	rest += 6;
	const size_t len = strlen(rest);
	return len >= 6 && !strchr(rest, '/') && rest[0] != '.' &&
	       strcmp(rest + len - 5, ".ckpt") == 0;
}

/* Rank 0: rank r's files into shard_dir/received/, each written whole under a
 * temporary name and renamed. Every piece is taken off the wire, whatever
 * fails here. */
static int receive_shard(job *j, const char *shard_dir, int r)
{
	char dir[4096], path[4200], tmp[4300];
	int rc = 0;
	snprintf(dir, sizeof dir, "%s/received", shard_dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		rc = bv_error_set(BV_EIO, "cannot create '%s': %s", dir, strerror(errno));
	snprintf(path, sizeof path, "%s/shard-%d.db.ckpt", dir, r);
	if (rc == 0 && mkdir(path, 0755) != 0 && errno != EEXIST)
		rc = bv_error_set(BV_EIO, "cannot create '%s': %s", path, strerror(errno));
	for (;;) {
		wire w;
		mpi_recv_raw(&w, (int)sizeof w, r, TAG_UP);
		w.text[sizeof w.text - 1] = '\0';
		if (w.kind != UP_FILE || w.size < 0) {
			if (rc == 0 && w.kind == UP_FILE && w.code)
				rc = bv_error_set(w.code, "rank %d: %s", r, w.text);
			return rc;
		}
		int fd = -1;
		if (rc == 0 && !ship_name_ok(w.text, r))
			rc = bv_error_set(BV_EFORMAT, "rank %d sent a file named '%s'", r, w.text);
		if (rc == 0 && (snprintf(path, sizeof path, "%s/%s", dir, w.text) >= (int)sizeof path ||
				snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp))
			rc = bv_error_set(BV_EINVAL, "--shard-dir: '%s' is too long", shard_dir);
		if (rc == 0 && (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
			rc = bv_error_set(BV_EIO, "cannot write '%s': %s", tmp, strerror(errno));
		for (long long off = 0; off < w.size; off += CHUNK) {
			const int n = (int)(w.size - off < CHUNK ? w.size - off : CHUNK);
			mpi_recv_raw(chunk_buf, n, r, TAG_BYTES);
			for (int done = 0; fd >= 0 && rc == 0 && done < n;) {
				ssize_t put = write(fd, chunk_buf + done, (size_t)(n - done));
				if (put < 0 && errno == EINTR)
					continue;
				if (put <= 0)
					rc = bv_error_set(BV_EIO, "cannot write '%s': %s", tmp,
							  strerror(errno));
				else
					done += (int)put;
			}
		}
		if (fd >= 0) {
			if (rc == 0 && fsync(fd) != 0)
				rc = bv_error_set(BV_EIO, "cannot write '%s': %s", tmp, strerror(errno));
			close(fd);
			if (rc == 0 && rename(tmp, path) != 0)
				rc = bv_error_set(BV_EIO, "cannot rename '%s': %s", tmp, strerror(errno));
			if (rc)
				unlink(tmp);
		}
	}
}

/* Rank 0, every rank closed: which shards it cannot read (their nonce is not
 * at their path here) come over MPI; the others are told there is no need. */
int mpi_gather_shards(job *j, const char *shard_dir)
{
	int rc = 0;
	for (int r = 1; r < j->size; r++) {
		char path[4096];
		unsigned char *text = NULL;
		size_t len = 0;
		snprintf(path, sizeof path, "%s/shard-%d.db.ckpt/nonce", shard_dir, r);
		const int seen = j->nonce && j->nonce[r][0] &&
				 bv_read_file(&text, &len, path) == 0 && len == strlen(j->nonce[r]) &&
				 memcmp(text, j->nonce[r], len) == 0;
		free(text);
		wire w = {.kind = DOWN_SHIP, .code = !seen};
		mpi_send_wire(&w, r, TAG_DOWN);
		if (!seen) {
			const int rr = receive_shard(j, shard_dir, r);
			rc = rc ? rc : rr;
		}
	}
	return rc;
}

