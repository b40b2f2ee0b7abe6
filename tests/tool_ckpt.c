/*
 * Test helper: write a freshly initialised checkpoint of a given spec, input
 * shape and class count, so CLI tests can hand bvtool a mismatched teacher.
 *   tool_ckpt OUT SPEC C H W CLASSES
 */
#include <stdlib.h>

#include "nn.h"

int main(int argc, char **argv)
{
	bv_model *m = NULL;
	if (argc != 7) {
		fprintf(stderr, "usage: tool_ckpt OUT SPEC C H W CLASSES\n");
		return 2;
	}
	bv_shape in = {atoi(argv[3]), atoi(argv[4]), atoi(argv[5])};
	if (bv_model_new(&m, argv[2], in, atoi(argv[6])) != 0 || (bv_model_init(m, 1), 0) ||
	    bv_ckpt_save(m, argv[1]) != 0) {
		fprintf(stderr, "tool_ckpt: %s\n", bv_error_last());
		bv_model_free(m);
		return 1;
	}
	bv_model_free(m);
	return 0;
}
