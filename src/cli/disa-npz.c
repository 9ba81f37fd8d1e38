// disa-npz: pack a results folder into the sample-batch .npz of OpenAI's guided-diffusion
// evaluator (evaluations/evaluator.py), as used for MAR/DiSA FID numbers.
//
//   disa-npz DIR OUT.npz [--labels text|none]
//
// arr_0: uint8 [N, H, W, 3], the PNGs DIR/NNNNN.png in index order (gray replicated to
// RGB); arr_1: int64 [N], each image's tEXt "class" (--labels text, the default), left
// out with --labels none. Streams one image at a time, so 50,000 images need a few MB.
// Exit status: 0 written, 1 failure (OUT.npz untouched), 2 bad usage.
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/path.h"
#include "disa/image.h"

#include <stdio.h>
#include <string.h>

static int usage(FILE *f) {
    return flag_usage(f, "usage: disa-npz DIR OUT.npz [--labels text|none]\n");
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    const char *pos[2] = {NULL, NULL};
    int npos = 0, labels = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--labels") == 0 || strncmp(a, "--labels=", 9) == 0) {
            const char *v = a[8] == '=' ? a + 9 : NULL;
            if (flag_value(argc, argv, &i, "labels", &v) != 0) {
                fprintf(stderr, "disa-npz: %s\n", disa_errmsg());
                return 2;
            }
            if (strcmp(v, "text") == 0) labels = 1;
            else if (strcmp(v, "none") == 0) labels = 0;
            else {
                fprintf(stderr, "disa-npz: --labels must be 'text' (from each PNG's tEXt \"class\") or 'none', "
                                "got '%s'\n", v);
                return 2;
            }
        } else if (flag_is_help(a)) {
            return usage(stdout);
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "disa-npz: unknown flag '%s' (disa-npz --help lists them)\n", a);
            return 2;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "disa-npz: unexpected argument '%s'\n", a);
            return usage(stderr);
        }
    }
    if (npos != 2) return usage(stderr);
    if (path_check_writable(pos[1], 0, "OUT.npz") != 0) {
        fprintf(stderr, "disa-npz: %s\n", disa_errmsg());
        return 2;
    }
    npz_images_report r;
    int rc = npz_write_images(pos[1], pos[0], labels, &r);
    if (rc) {
        fprintf(stderr, "disa-npz: %s\n", disa_errmsg());
        return disa_exit_status(rc);
    }
    printf("disa-npz: wrote %s: arr_0 uint8 [%lld, %d, %d, 3]%s from %s, indices %lld..%lld\n", pos[1],
           (long long)r.n, r.h, r.w, r.labels ? ", arr_1 int64 labels" : "", pos[0], (long long)r.first,
           (long long)r.last);
    if (r.gaps)
        fprintf(stderr, "disa-npz: note: %lld indices between %lld and %lld have no image (an unfinished run?)\n",
                (long long)r.gaps, (long long)r.first, (long long)r.last);
    return 0;
}
