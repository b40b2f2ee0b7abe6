/*
 * Data augmentation for training batches: torchvision's RandomCrop with zero
 * padding followed by RandomHorizontalFlip, on normalised CHW rows.
 *
 * The training loop gathers a batch, then calls bv_augment_crop_flip into a
 * second buffer; the data set itself is never changed, so evaluation and the
 * teacher's logits see the original images. Every sample takes exactly three
 * draws from the caller's rng (offset y, offset x, flip), so a given seed gives
 * the same augmented batches whatever the padding.
 */
#include "train.h"

#include "base.h"

#include <string.h>

#include <gsl/gsl_rng.h>

int bv_augment_parse(int *out, const char *s, const char *what)
{
	if (strcmp(s, "none") == 0) {
		*out = BV_AUG_NONE;
		return 0;
	}
	if (strcmp(s, "crop-flip") == 0) {
		*out = BV_AUG_CROP_FLIP;
		return 0;
	}
	return bv_error_set(BV_EINVAL, "%s: unknown augmentation '%s' (expected none or crop-flip)", what,
			    s);
}

const char *bv_augment_name(int aug)
{
	switch (aug) {
	case BV_AUG_NONE:
		return "none";
	case BV_AUG_CROP_FLIP:
		return "crop-flip";
	}
	return "?";
}

/* One sample: out[c][i][j] = padded[c][oy + i][ox + (flip ? W-1-j : j)], where
 * padded[c][y][x] = in[c][y - pad][x - pad] inside the image, else fill[c]. */
static void crop_flip_one(float *out, const float *in, bv_shape s, int pad, int oy, int ox, int flip,
			  const float *pad_value)
{
	int h = s.h, w = s.w;
	/* source column of output column j (before the flip) is ox - pad + j:
	 * in range for j in [j0, j1) */
	int dx = ox - pad, j0 = dx < 0 ? -dx : 0, j1 = w - (dx > 0 ? dx : 0);

	for (int c = 0; c < s.c; c++) {
		float fill = pad_value ? pad_value[c] : 0.0f;
		const float *src = in + (size_t)c * h * w;
		float *dst = out + (size_t)c * h * w;
		for (int i = 0; i < h; i++) {
			float *row = dst + (size_t)i * w;
			int sy = oy - pad + i;
			if (sy < 0 || sy >= h || j0 >= j1) {
				for (int j = 0; j < w; j++)
					row[j] = fill;
				continue;
			}
			for (int j = 0; j < j0; j++)
				row[j] = fill;
			memcpy(row + j0, src + (size_t)sy * w + (j0 + dx), (size_t)(j1 - j0) * sizeof *row);
			for (int j = j1; j < w; j++)
				row[j] = fill;
			if (flip)
				for (int a = 0, b = w - 1; a < b; a++, b--) {
					float t = row[a];
					row[a] = row[b];
					row[b] = t;
				}
		}
	}
}

void bv_augment_crop_flip(float *out, const float *in, int n, bv_shape s, int pad,
			  const float *pad_value, gsl_rng *rng)
{
	size_t d = bv_shape_size(s);
	unsigned long span = (unsigned long)(pad > 0 ? 2 * pad + 1 : 1);

	for (int k = 0; k < n; k++) {
		int oy = (int)gsl_rng_uniform_int(rng, span);
		int ox = (int)gsl_rng_uniform_int(rng, span);
		int flip = (int)gsl_rng_uniform_int(rng, 2);
		crop_flip_one(out + (size_t)k * d, in + (size_t)k * d, s, pad > 0 ? pad : 0, oy, ox, flip,
			      pad_value);
	}
}
