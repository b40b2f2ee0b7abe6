/*
 * train: data sets, bootstrap replicas and the training loop.
 *
 * A data set is loaded once into normalised float32 rows; training reads rows
 * by index, so a bootstrap replica is just an index list (with repeats). The
 * teacher's logits on the training set are computed once (eval mode) and then
 * gathered per batch, since the teacher is fixed and deterministic.
 *
 * The collect engine built on these (a plan of cells, the teacher step, the
 * runners that run cells) has a header of its own, collect.h.
 */
#ifndef BV_TRAIN_H
#define BV_TRAIN_H

#include <stdint.h>

#include "db.h"
#include "nn.h"

/* ---- data -------------------------------------------------------------- */

typedef struct bv_split {
	int n;          /* samples */
	float *x;       /* (n, c*h*w) normalised inputs */
	int *y;         /* (n) labels in [0, n_classes) */
} bv_split;

typedef struct bv_data {
	char name[32];      /* "fashion-mnist", "mnist", "idx", "cifar10", "cifar100" */
	char dir[512];      /* the directory the files were read from */
	bv_shape shape;     /* per sample */
	int n_classes;
	float mean[3], std[3]; /* per channel, of the training set in [0,1] units */
	bv_split train, test;
} bv_data;

/* The default directory of the Debian package dataset-fashion-mnist. */
#define BV_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/*
 * Load a data set named "NAME[:DIR]":
 *   fashion-mnist[:DIR]  DIR defaults to BV_FASHION_MNIST_DIR
 *   mnist:DIR, idx:DIR   IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte,
 *                        t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or
 *                        with a .gz suffix (gzip).
 *   cifar10:DIR          CIFAR-10 binary batches data_batch_1.bin .. data_batch_5.bin
 *                        (train, in that order) and test_batch.bin; records of 1 label
 *                        byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B, 32x32
 *                        row-major); 10 classes.
 *   cifar100:DIR         CIFAR-100 train.bin and test.bin; records of 2 label bytes
 *                        (coarse, fine) + 3072 pixel bytes; the fine label, 100 classes.
 *   For CIFAR, DIR may be the folder the tarball unpacks to (cifar-10-batches-bin,
 *   cifar-100-binary) or its parent; d->dir is the folder the files came from.
 *   Each file holds 1 to the standard count of records (10000 per CIFAR-10 file,
 *   50000 / 10000 for CIFAR-100 train / test): a smaller file is a subset.
 * Pixels are scaled to [0,1], then normalised with the training set's mean and
 * standard deviation: of all pixels for IDX data (shape {1, rows, cols}, mean[0],
 * std[0]), per channel for CIFAR (shape {3, 32, 32}, CHW as in the file, mean[c],
 * std[c] for c < 3). Errors name the file: a missing directory or file (BV_EIO),
 * a truncated or corrupt gzip, a wrong magic, image and label counts that differ,
 * a CIFAR file size that is not a whole number of records or an empty or
 * oversized CIFAR file, a label outside [0, n_classes) (BV_EFORMAT, naming the
 * sample/record and the value). n_classes is 10 for IDX data.
 */
int bv_data_load(bv_data *out, const char *spec);
void bv_data_release(bv_data *d);
/* The normalised value of a black pixel (raw 0) per channel: out[c] =
 * -mean[c] / std[c] for c < shape.c — what zero padding of the raw image
 * becomes after normalisation (the pad_value of bv_augment_crop_flip). */
void bv_data_zero_value(float *out, const bv_data *d);
/* Keep only the first n training samples (n <= train.n). */
void bv_data_truncate_train(bv_data *d, int n);

/* Read one IDX file (raw or gzip by content, not by name): dims and the payload
 * bytes (caller frees *out). magic_type is 0x08 (unsigned byte) only. The
 * payload is at most 4 GiB; data past the header's promise is BV_EFORMAT. */
int bv_idx_read(unsigned char **out, int *out_ndims, int dims[4], const char *path);

/* ---- augmentation -------------------------------------------------------- */

typedef enum bv_augment {
	BV_AUG_NONE = 0,
	BV_AUG_CROP_FLIP = 1,   /* random crop after padding, then horizontal flip */
} bv_augment;

/* Parse "none" | "crop-flip" into *out (a bv_augment); `what` names the flag in
 * the message: "--augment: unknown augmentation 'x' (expected none or crop-flip)". */
int bv_augment_parse(int *out, const char *s, const char *what);
/* The canonical name ("none", "crop-flip"; "?" for anything else). */
const char *bv_augment_name(int aug);

/*
 * torchvision's RandomCrop(size = (H, W), padding = pad) then
 * RandomHorizontalFlip(0.5), on n samples (CHW, shape s) of normalised rows:
 * in and out are (n, s.c*s.h*s.w) and must not overlap. Each sample is padded
 * by `pad` on every side, an HxW window at offsets (oy, ox), each uniform in
 * [0, 2*pad], is cut out, and with probability 1/2 mirrored left-right:
 *   out[c][i][j] = padded[c][oy + i][ox + (flip ? W-1-j : j)].
 * torchvision pads the raw image with 0 before normalising, so the padding is
 * pad_value[c] (s.c values; bv_data_zero_value gives -mean[c] / std[c]); NULL
 * pads with 0. Draws per sample, in this order and always all three (so pad 0
 * consumes the same stream): oy = gsl_rng_uniform_int(rng, 2*pad+1), ox likewise,
 * flip = gsl_rng_uniform_int(rng, 2). A seeded rng gives the same output.
 */
void bv_augment_crop_flip(float *out, const float *in, int n, bv_shape s, int pad,
			  const float *pad_value, gsl_rng *rng);

/* ---- bootstrap ---------------------------------------------------------- */

/* Draw n indices with replacement from [0, n) with GSL mt19937 seeded with
 * `seed`; idx (n) receives them, counts (n, may be NULL) the in-bag counts. */
void bv_bootstrap_draw(int *idx, int *counts, int n, unsigned long seed);

/* ---- training ----------------------------------------------------------- */

typedef struct bv_train_cfg {
	bv_loss_cfg loss;
	float lr, momentum, wd;
	int nesterov;
	bv_schedule schedule;
	int epochs;
	int batch;
	unsigned long seed;   /* weight init, batch order, augmentation and dropout */
	int threads;          /* BLAS threads; <= 0 leaves the default */
	int augment;          /* BV_AUG_NONE, or BV_AUG_CROP_FLIP: 4-pixel padded crop + flip */
	/* A teacher model, run on every batch when augmenting or with
	 * teacher_bn_train (its batch norm on batch statistics, as the authors'
	 * code does); otherwise (or when NULL) the teacher_logits passed to
	 * bv_train_run are gathered per batch. */
	bv_model *teacher;
	int teacher_bn_train;
} bv_train_cfg;

/* Defaults: ce, T 4, alpha 2.25, gamma 1, lr 0.05, momentum 0.9, wd 5e-4,
 * cosine, 10 epochs, batch 128, seed 1, threads 1, no augmentation, no teacher model. */
void bv_train_cfg_default(bv_train_cfg *cfg);

/* What the training loop reports after each epoch. */
typedef struct bv_epoch_stats {
	int epoch;              /* 1-based */
	int n_epochs;
	float lr;
	double loss;            /* mean training loss */
	double train_acc;       /* share of the epoch's training samples predicted right */
	double test_acc;        /* eval mode, whole test split */
	double wsl_weight;      /* mean w_i over the epoch (WSL), else 0 */
	double filtered;        /* share of soft terms dropped (kd-filter), else 0 */
	double seconds;         /* wall time of the epoch, evaluation included */
	const float *test_logits; /* (test.n, n_classes) eval-mode logits, valid during the callback */
} bv_epoch_stats;

/* Called after every epoch; a non-zero return stops training with that code. */
typedef int (*bv_epoch_fn)(void *ctx, const bv_epoch_stats *st, bv_model *m);

/*
 * Train `m` (already built and initialised) on the rows `idx` (n_idx, with
 * repeats for a bootstrap replica; NULL = all training rows in order) of
 * d->train. teacher_logits (d->train.n, n_classes) are the teacher's eval-mode
 * logits on the whole training split; kd/wsl/kd-filter need them or cfg->teacher.
 * Each epoch shuffles the rows with mt19937 seeded from (cfg->seed, epoch), so a
 * given seed gives the same batch order whatever the method.
 * A NaN/Inf loss stops with BV_EDIVERGED naming the epoch and step.
 */
int bv_train_run(bv_model *m, const bv_train_cfg *cfg, const bv_data *d, const int *idx,
		 int n_idx, const float *teacher_logits, bv_epoch_fn on_epoch, void *ctx);


/* ---- the collection grid (bvtool collect) -------------------------------- */

/* Which epochs to record: "all", "last", or a list "1,5,10". */
typedef struct bv_record_cfg {
	int all, last;
	int n_list;
	int list[256];
	int train;          /* also record the training split */
} bv_record_cfg;

int bv_record_parse(bv_record_cfg *out, const char *s, int n_epochs, const char *what);
int bv_record_wants(const bv_record_cfg *r, int epoch, int n_epochs);
/* Canonical text ("all", "last", "1,5,10"). */
void bv_record_format(char *out, size_t size, const bv_record_cfg *r);

/* One student cell of the grid. */
typedef struct bv_cell {
	int64_t run_id;
	bv_method method;
	double temp;        /* NAN for ce */
	int seed;           /* replica number (the bootstrap draw), >= 1 */
	int init;           /* its initialisation, 1..M (collect --inits M) */
} bv_cell;

/* The seed of a cell's weights, batch order, augmentation and dropout: the
 * replica number for init 1 (every cell before --inits, and all of an
 * --inits 1 grid), seed + (init - 1) * BV_INIT_SEED_STRIDE otherwise (seeds
 * stay below the stride, so no two cells share one). The bootstrap draw is
 * the replica number's whatever the init. */
#define BV_INIT_SEED_STRIDE 100000
static inline unsigned long bv_cell_train_seed(const bv_cell *c)
{
	/* init 0 (a cell written without one) is init 1 */
	return (unsigned long)c->seed +
	       (c->init > 1 ? (unsigned long)(c->init - 1) * BV_INIT_SEED_STRIDE : 0);
}

/* Progress of a cell, after each epoch. */
typedef void (*bv_cell_progress_fn)(void *ctx, const bv_cell *cell, const bv_epoch_stats *st);

/*
 * Train one cell on its bootstrap replica and record it in db:
 *   - replica: bv_bootstrap_draw(seed) over d->train; initial weights
 *     bv_model_init(seed); batch order from cfg seed = seed — so every method and
 *     temperature of one seed shares the draw, the weights and the batches;
 *   - every epoch: a metrics row; the test (and with rec->train, train) logits
 *     when rec wants the epoch, each epoch in one transaction;
 *   - at the end: the checkpoint at ckpt_path (atomically), then the run is done.
 * The run is reset first (any rows of an interrupted attempt are dropped).
 */
int bv_cell_train(bv_db *db, const bv_data *d, const char *spec, const bv_train_cfg *base,
		  const bv_record_cfg *rec, const bv_cell *cell, const float *teacher_logits,
		  const char *ckpt_path, const char *ckpt_rel, bv_cell_progress_fn progress,
		  void *ctx);

/* Record a finished teacher: its test and train logits as the snapshot of
 * epoch `epoch` of run `run_id`, then mark the run done. teacher_logits_train
 * (d->train.n, k) is computed by the caller (it also feeds the students). */
int bv_teacher_record(bv_db *db, int64_t run_id, bv_model *teacher, const bv_data *d,
		      const float *teacher_logits_train, int epoch, const char *ckpt_rel,
		      double seconds);

#endif
