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
#include "disa/image.h"

#include <stdio.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: disa-npz DIR OUT.npz [--labels text|none]\n");
    return 2;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    const char *pos[2] = {NULL, NULL};
    int npos = 0, labels = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--labels") == 0 || strncmp(a, "--labels=", 9) == 0) {
            const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) return usage();
            if (strcmp(v, "text") == 0) labels = 1;
            else if (strcmp(v, "none") == 0) labels = 0;
            else {
                fprintf(stderr, "disa-npz: --labels must be 'text' (from each PNG's tEXt \"class\") or 'none', "
                                "got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "disa-npz: unknown option '%s'\n", a);
            return usage();
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "disa-npz: unexpected argument '%s'\n", a);
            return usage();
        }
    }
    if (npos != 2) return usage();
    npz_images_report r;
    if (npz_write_images(pos[1], pos[0], labels, &r) != 0) {
        fprintf(stderr, "disa-npz: %s\n", disa_errmsg());
        return 1;
    }
    printf("disa-npz: wrote %s: arr_0 uint8 [%lld, %d, %d, 3]%s from %s, indices %lld..%lld\n", pos[1],
           (long long)r.n, r.h, r.w, r.labels ? ", arr_1 int64 labels" : "", pos[0], (long long)r.first,
           (long long)r.last);
    if (r.gaps)
        fprintf(stderr, "disa-npz: note: %lld indices between %lld and %lld have no image (an unfinished run?)\n",
                (long long)r.gaps, (long long)r.first, (long long)r.last);
    return 0;
}
