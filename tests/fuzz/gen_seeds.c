/*
 * gen_seeds: writes the seed corpora of the file-format targets, and a tiny
 * IDX data set for the database seeds (gen_seeds.sh runs this, then bvtool).
 *   gen_seeds CORPUS_DIR DATA_DIR
 * CORPUS_DIR/fuzz_idx, fuzz_cifar, fuzz_ckpt, fuzz_opts: one file per seed,
 * each starting with the mode byte its target reads (see the targets).
 * DATA_DIR: train-images-idx3-ubyte.gz etc. of 120 training and 40 test
 * images of 6x6 in 10 classes, learnable (each class a bright square at its
 * own place, plus noise), so that a collect on it records real predictions.
 * Deterministic: the same bytes on every run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "nn.h"

static char corpus[512];

static void put(const char *target, const char *name, int mode, const void *data, size_t len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", corpus, target);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/%s", corpus, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || (mode >= 0 && fputc(mode, f) == EOF) || (len && fwrite(data, 1, len, f) != len) ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static unsigned char *gzip(const unsigned char *data, size_t size, size_t *out_len)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	/* level 9, no file name and time 0 in the header: deterministic */
	if (deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		exit(1);
	size_t cap = deflateBound(&zs, size) + 32;
	unsigned char *out = malloc(cap);
	zs.next_in = (unsigned char *)data;
	zs.avail_in = (uInt)size;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	if (!out || deflate(&zs, Z_FINISH) != Z_STREAM_END)
		exit(1);
	*out_len = zs.total_out;
	deflateEnd(&zs);
	return out;
}

/* An IDX file of ndims (1 labels, 3 images) with dims, payload from fill. */
static unsigned char *idx(size_t *len, int ndims, const int *dims, const unsigned char *payload)
{
	size_t n = 1;
	for (int i = 0; i < ndims; i++)
		n *= (size_t)dims[i];
	unsigned char *b = malloc(4 + 4 * (size_t)ndims + n);
	b[0] = 0;
	b[1] = 0;
	b[2] = 0x08;
	b[3] = (unsigned char)ndims;
	for (int i = 0; i < ndims; i++) {
		b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
		b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
		b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
		b[7 + 4 * i] = (unsigned char)dims[i];
	}
	memcpy(b + 4 + 4 * ndims, payload, n);
	*len = 4 + 4 * (size_t)ndims + n;
	return b;
}

static uint32_t rng_state = 12345;
static unsigned rnd(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 16;
}

/* The tiny data set: n images of 6x6 and their labels. */
static void dataset(unsigned char *pix, unsigned char *lab, int n)
{
	for (int i = 0; i < n; i++) {
		int y = (int)(rnd() % 10);
		lab[i] = (unsigned char)y;
		for (int p = 0; p < 36; p++)
			pix[i * 36 + p] = (unsigned char)(rnd() % 80);
		/* class y: a 2x2 bright square at one of 10 places of a 6x6 grid */
		int r0 = (y / 5) * 3, c0 = (y % 5);
		for (int dr = 0; dr < 2; dr++)
			for (int dc = 0; dc < 2; dc++)
				pix[i * 36 + (r0 + dr) * 6 + c0 + dc] = (unsigned char)(200 + rnd() % 56);
	}
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void idx_seeds(const char *data_dir)
{
	unsigned char pix[160 * 36], lab[160];
	size_t len, glen;
	char path[1024];
	dataset(pix, lab, 160);

	/* the data set for gen_seeds.sh's collect */
	const struct { const char *name; int images, off, n; } files[4] = {
		{"train-images-idx3-ubyte", 1, 0, 120}, {"train-labels-idx1-ubyte", 0, 0, 120},
		{"t10k-images-idx3-ubyte", 1, 120, 40}, {"t10k-labels-idx1-ubyte", 0, 120, 40}};
	for (int i = 0; i < 4; i++) {
		int dims[3] = {files[i].n, 6, 6};
		unsigned char *b = files[i].images ? idx(&len, 3, dims, pix + files[i].off * 36)
						   : idx(&len, 1, dims, lab + files[i].off);
		unsigned char *g = gzip(b, len, &glen);
		snprintf(path, sizeof path, "%s/%s.gz", data_dir, files[i].name);
		write_file(path, g, glen);
		free(g);
		free(b);
	}

	/* fuzz_idx: small files, raw and gzip, images and labels, alone and as a data set */
	int idims[3] = {3, 6, 6}, ldims[1] = {3}, d4[4] = {2, 1, 3, 2};
	unsigned char *img = idx(&len, 3, idims, pix);
	put("fuzz_idx", "images-raw", 0, img, len);
	put("fuzz_idx", "images-gzip-here", 2, img, len);
	put("fuzz_idx", "images-dataset", 4 | 0 << 3, img, len);
	put("fuzz_idx", "test-images-dataset-gz", 4 | 1 | 2 | 2 << 3, img, len);
	unsigned char *g = gzip(img, len, &glen);
	put("fuzz_idx", "images.gz", 1, g, glen);
	free(g);
	free(img);
	unsigned char *labels = idx(&len, 1, ldims, lab);
	put("fuzz_idx", "labels-raw", 0, labels, len);
	put("fuzz_idx", "labels-dataset", 4 | 1 << 3, labels, len);
	put("fuzz_idx", "test-labels-dataset", 4 | 3 << 3, labels, len);
	g = gzip(labels, len, &glen);
	put("fuzz_idx", "labels.gz", 1, g, glen);
	/* two gzip members, one after the other */
	unsigned char two[256];
	memcpy(two, g, glen);
	memcpy(two + glen, g, glen);
	put("fuzz_idx", "labels-2members.gz", 1, two, 2 * glen);
	free(g);
	free(labels);
	unsigned char *four = idx(&len, 4, d4, pix);
	put("fuzz_idx", "4dims-raw", 0, four, len);
	free(four);
}

static void cifar_seeds(void)
{
	enum { REC = 3072 };
	static unsigned char b[2 * (2 + REC)];
	for (int c100 = 0; c100 < 2; c100++) {
		int lb = c100 ? 2 : 1, n_files = c100 ? 2 : 6;
		size_t rec = (size_t)lb + REC;
		for (int r = 0; r < 2; r++) {
			unsigned char *p = b + (size_t)r * rec;
			p[0] = (unsigned char)(c100 ? 19 - r : 9 - r);
			if (c100)
				p[1] = (unsigned char)(99 - r * 50);
			for (int i = 0; i < REC; i++)
				p[lb + i] = (unsigned char)(rnd() % 256);
		}
		for (int f = 0; f < n_files; f++) {
			char name[64];
			snprintf(name, sizeof name, "%s-file%d", c100 ? "cifar100" : "cifar10", f);
			put("fuzz_cifar", name, c100 | f << 1, b, 2 * rec);
		}
		char name[64];
		snprintf(name, sizeof name, "%s-subdir", c100 ? "cifar100" : "cifar10");
		put("fuzz_cifar", name, c100 | 16, b, rec);
		snprintf(name, sizeof name, "%s-missing", c100 ? "cifar100" : "cifar10");
		put("fuzz_cifar", name, c100 | 32, NULL, 0);
	}
}

static void ckpt_seeds(const char *tmp)
{
	static const char *const specs[] = {"mlp:", "mlp:4", "mlp:4-3:dropout=0.5", "cnn-small"};
	const bv_shape in = {1, 4, 4};
	char path[1024];
	for (unsigned i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		bv_model *m = NULL;
		if (bv_model_new(&m, specs[i], in, 10) != 0) {
			fprintf(stderr, "gen_seeds: %s\n", bv_error_last());
			exit(1);
		}
		bv_model_init(m, 1);
		snprintf(path, sizeof path, "%s/seed.ckpt", tmp);
		if (bv_ckpt_save(m, path) != 0) {
			fprintf(stderr, "gen_seeds: %s\n", bv_error_last());
			exit(1);
		}
		FILE *f = fopen(path, "rb");
		static unsigned char buf[1 << 20];
		size_t len = fread(buf, 1, sizeof buf, f);
		fclose(f);
		remove(path);
		char name[64];
		snprintf(name, sizeof name, "ckpt%u-%s", i, i == 0 ? "linear" : specs[i]);
		for (char *c = name; *c; c++)
			if (*c == ':' || *c == '=')
				*c = '_';
		/* as the tool loads a teacher (mode 2), and with the CRC rewritten (1) */
		put("fuzz_ckpt", name, 2, buf, len);
		if (i < 2) {
			strcat(name, "-crc");
			put("fuzz_ckpt", name, 3, buf, len);
		}
		if (i == 1) {
			/* the same model as a version 1 file: no buffers, CRC after the parameters */
			size_t v1 = len - 8 - 4; /* drop u64 n_buffers (0) and the CRC */
			buf[8] = 1;
			uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)v1);
			for (int k = 0; k < 4; k++)
				buf[v1 + k] = (unsigned char)(crc >> (8 * k));
			put("fuzz_ckpt", "ckpt-v1-mlp_4", 2, buf, v1 + 4);
		}
		bv_model_free(m);
	}
}

#define SEED(name, text) {name, text, sizeof text - 1}

static void opts_seeds(void)
{
	/* argv words cut at NUL bytes (cli_parse), or one value (the value parsers) */
	static const struct { const char *name, *text; size_t len; } seeds[] = {
		SEED("all", "--db\0x.db\0--epochs\0" "5\0--seeds=3\0--alpha\0-0.5\0--lr=1e-3\0--nesterov"),
		SEED("help", "--help"),
		SEED("eq-flag", "--record-train=1"),
		SEED("missing", "--lr"),
		SEED("unknown", "--nope\0x"),
		SEED("number", "0.25"),
		SEED("schedule", "step:150,180,210:0.1"),
		SEED("record", "1,5,10"),
		SEED("method", "kd-filter"),
		SEED("augment", "crop-flip"),
		SEED("criterion", "teacher"),
	};
	for (unsigned i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		put("fuzz_opts", seeds[i].name, -1, seeds[i].text, seeds[i].len);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: gen_seeds CORPUS_DIR DATA_DIR\n");
		return 2;
	}
	snprintf(corpus, sizeof corpus, "%s", argv[1]);
	mkdir(corpus, 0755);
	mkdir(argv[2], 0755);
	idx_seeds(argv[2]);
	cifar_seeds();
	ckpt_seeds(argv[2]);
	opts_seeds();
	return 0;
}
