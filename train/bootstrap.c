/*
 * Bootstrap replicas: n indices drawn with replacement from [0, n).
 *
 * A replica is only an index list (with repeats) into the training split, so
 * the same seed always names the same replica: the draw uses GSL's mt19937
 * seeded with `seed` and gsl_rng_uniform_int, nothing else. About 1 - 1/e
 * (63.2%) of the samples land in-bag; counts[j] says how often j was drawn.
 */
#include "train.h"

#include <string.h>

#include <gsl/gsl_rng.h>

void bv_bootstrap_draw(int *idx, int *counts, int n, unsigned long seed)
{
	gsl_rng *rng = NULL;

	if (counts && n > 0)
		memset(counts, 0, (size_t)n * sizeof *counts);
	if (n <= 0)
		goto done;
	/* gsl_rng_alloc calls the GSL error handler (abort) when out of memory */
	rng = gsl_rng_alloc(gsl_rng_mt19937);
	if (!rng)
		goto done;
	gsl_rng_set(rng, seed);
	for (int i = 0; i < n; i++) {
		idx[i] = (int)gsl_rng_uniform_int(rng, (unsigned long)n);
		if (counts)
			counts[idx[i]]++;
	}
done:
	if (rng)
		gsl_rng_free(rng);
}
