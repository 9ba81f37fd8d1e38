// disa-grid: contact sheet of a results folder.
//
//   disa-grid DIR OUT.png [--cols N] [--rows-by index|class] [--max N] [--sep PX]
//
// --rows-by index (default): the images in index order, N per row. --rows-by class: one
// row per class (each PNG's tEXt "class"), classes ascending, each row the class's first
// N images. --max: at most that many images, in sheet order (default 100, 0 = all).
// --sep: white separator width between cells (default 2). OUT.png is written atomically.
// Exit status: 0 written, 1 failure (OUT.png untouched), 2 bad usage.
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/path.h"
#include "disa/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: disa-grid DIR OUT.png [--cols N] [--rows-by index|class] [--max N] [--sep PX]\n");
    return f == stdout ? 0 : 2;
}

static int int_flag(const char *flag, const char *v, long lo, long hi, long *out) {
    long long x;
    if (flag_int(flag, v, lo, hi, &x) != 0) {
        fprintf(stderr, "disa-grid: %s\n", disa_errmsg());
        return 2;
    }
    *out = (long)x;
    return 0;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    grid_params p;
    grid_params_init(&p);
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (flag_is_help(a)) return usage(stdout);
        if (!(a[0] == '-' && a[1] == '-')) {
            if (npos == 2) {
                fprintf(stderr, "disa-grid: unexpected argument '%s'\n", a);
                return usage(stderr);
            }
            pos[npos++] = a;
            continue;
        }
        char flag[32];
        const char *val;
        flag_split(a, 1, flag, sizeof flag, &val);
        static const char *const known[] = {"cols", "max", "sep", "rows-by", NULL};
        int k = 0;
        while (known[k] && strcmp(known[k], flag) != 0) k++;
        if (!known[k]) {
            fprintf(stderr, "disa-grid: unknown flag '%s' (disa-grid --help lists them)\n", a);
            return 2;
        }
        if (flag_value(argc, argv, &i, flag, &val) != 0) {
            fprintf(stderr, "disa-grid: %s\n", disa_errmsg());
            return 2;
        }
        long v;
        if (strcmp(flag, "cols") == 0) {
            if (int_flag(flag, val, 1, 1000, &v)) return 2;
            p.cols = (int)v;
        } else if (strcmp(flag, "max") == 0) {
            if (int_flag(flag, val, 0, 100000000, &v)) return 2;
            p.max = v;
        } else if (strcmp(flag, "sep") == 0) {
            if (int_flag(flag, val, 0, 64, &v)) return 2;
            p.sep = (int)v;
        } else if (strcmp(flag, "rows-by") == 0) {
            if (grid_rows_by_parse(val, &p.rows_by) != 0) {
                fprintf(stderr, "disa-grid: --%s\n", disa_errmsg());
                return 2;
            }
        }
    }
    if (npos != 2) return usage(stderr);
    if (path_check_writable(pos[1], 0, "OUT.png") != 0) {
        fprintf(stderr, "disa-grid: %s\n", disa_errmsg());
        return 2;
    }
    grid_report r;
    int rc = grid_write(pos[1], pos[0], &p, &r);
    if (rc) {
        fprintf(stderr, "disa-grid: %s\n", disa_errmsg());
        return disa_exit_status(rc);
    }
    printf("disa-grid: wrote %s: %d x %d px, %d rows x %d cols by %s, %d images from %s\n", pos[1], r.width,
           r.height, r.rows, r.cols, grid_rows_by_name(p.rows_by), r.n, pos[0]);
    return 0;
}
