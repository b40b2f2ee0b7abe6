/*
 * The training losses of SPEC.md, per batch, with their gradient with respect
 * to the student logits. Per sample i (student logits s, teacher t, label y):
 *   CE_i  = -log softmax(s)_y
 *   H_i   = -sum_k softmax(t/T)_k log softmax(s/T)_k
 *   ce:        L = mean CE_i
 *   kd:        L = gamma mean CE_i + alpha T^2 mean H_i
 *   wsl:       L = gamma mean CE_i + alpha T^2 mean w_i H_i,
 *              w_i = 1 - exp(-CEs_i / (CEt_i + 1e-7)), held constant
 *   kd-filter: kd with w_i = 0 where the `grad` criterion flags sample i
 * dL/ds_k = gamma/n (q_k - [k=y]) + alpha T w_i / n (p_s^T_k - p_t^T_k).
 * All of it in double, from log-softmax (no log of an underflowed probability);
 * the formulas are math/'s (bvmath.h), which analysis/ calls too, so that
 * kd-filter's online flag and decompose's grad criterion agree to the bit.
 */
#include "nn.h"

#include "bvmath.h"

#include <math.h>
#include <string.h>

/* each training method's name in base's bv_method_names */
static const int method_name[] = {
	[BV_METHOD_CE] = 1, [BV_METHOD_KD] = 2, [BV_METHOD_WSL] = 3, [BV_METHOD_KD_FILTER] = 4,
	[BV_METHOD_TEACHER] = 0,
};

const char *bv_method_name(bv_method m)
{
	return (unsigned)m < BV_ARRAY_LEN(method_name) ? bv_method_names[method_name[m]] : "?";
}

int bv_method_parse(bv_method *out, const char *s, const char *what)
{
	for (unsigned i = 0; i < BV_ARRAY_LEN(method_name); i++)
		if (strcmp(s, bv_method_names[method_name[i]]) == 0) {
			*out = (bv_method)i;
			return 0;
		}
	return bv_error_set(BV_EINVAL, "%s: unknown method '%s' (expected ce, kd, wsl or kd-filter)",
			    what, s);
}

#define BV_MAX_CLASSES_STACK 1024

int bv_loss(bv_loss_stats *out, float *dlogits, float *weights, const bv_loss_cfg *cfg,
	    const float *s, const float *t, const int *y, int n, int k)
{
	double ls[BV_MAX_CLASSES_STACK], lsT[BV_MAX_CLASSES_STACK], ltT[BV_MAX_CLASSES_STACK];
	const int soft = cfg->method == BV_METHOD_KD || cfg->method == BV_METHOD_WSL ||
			 cfg->method == BV_METHOD_KD_FILTER;
	const double T = cfg->temp, gamma = soft ? cfg->gamma : 1.0, alpha = cfg->alpha;
	double sum_loss = 0, sum_ce = 0, sum_soft = 0, sum_w = 0;
	int n_correct = 0, n_filtered = 0;

	if (k > BV_MAX_CLASSES_STACK)
		return bv_error_set(BV_EINVAL, "%d classes is more than the %d supported", k,
				    BV_MAX_CLASSES_STACK);
	if (soft && !t)
		return bv_error_set(BV_EINVAL, "method '%s' needs teacher logits",
				    bv_method_name(cfg->method));
	for (int i = 0; i < n; i++) {
		const float *si = s + (size_t)i * k;
		const int yi = y[i];
		int arg = 0;
		for (int j = 1; j < k; j++)
			if (si[j] > si[arg])
				arg = j;
		n_correct += arg == yi;
		bv_math_log_softmax(ls, si, k, 1.0); /* log q */
		const double ce = -ls[yi];
		double h = 0, w = 1;
		if (soft) {
			const float *ti = t + (size_t)i * k;
			bv_math_log_softmax(lsT, si, k, T); /* log p_s^T */
			bv_math_log_softmax(ltT, ti, k, T); /* log p_t^T */
			h = bv_math_soft_ce_logp(ltT, lsT, k);
			if (cfg->method == BV_METHOD_WSL) {
				w = bv_math_wsl_weight(ce, bv_math_ce(ti, k, yi));
			} else if (cfg->method == BV_METHOD_KD_FILTER) {
				/* grad criterion: |b| > |a| at the true-class logit */
				if (bv_math_crit_grad(ls[yi], lsT[yi], ltT[yi], T)) {
					w = 0;
					n_filtered++;
				}
			}
		}
		const double li = gamma * ce + (soft ? alpha * T * T * w * h : 0.0);
		sum_loss += li;
		sum_ce += ce;
		sum_soft += h;
		sum_w += w;
		if (weights)
			weights[i] = (float)w;
		if (dlogits) {
			float *di = dlogits + (size_t)i * k;
			const double cs = soft ? alpha * T * w / n : 0.0;
			for (int j = 0; j < k; j++) {
				double g = gamma / n * (exp(ls[j]) - (j == yi));
				if (soft)
					g += cs * (exp(lsT[j]) - exp(ltT[j]));
				di[j] = (float)g;
			}
		}
	}
	out->loss = sum_loss / n;
	out->ce = sum_ce / n;
	out->soft = sum_soft / n;
	out->wsl_weight = sum_w / n;
	out->n_correct = n_correct;
	out->n_filtered = n_filtered;
	if (!isfinite(out->loss))
		return bv_error_set(BV_EDIVERGED, "loss is %g", out->loss);
	return 0;
}
