// disa-grid: contact sheet of a results folder.
//
//   disa-grid DIR OUT.png [--cols N] [--rows-by index|class] [--max N] [--sep PX]
//             [--scale S] [--labels NAME0,NAME1,...] [--title TEXT]
//
// --rows-by index (default): the images in index order, N per row. --rows-by class: one
// row per class (each PNG's tEXt "class"), classes ascending, each row the class's first
// N images. --max: at most that many images, in sheet order (default 100, 0 = all).
// --sep: white separator width between cells (default 2). --scale S enlarges the sheet S
// times by nearest neighbour, and --labels (the names of classes 0, 1, ...; with
// --rows-by class) writes each row's class name to its left, --title a line above: then
// the sheet is framed by gnuplot (src/io/plot.c) with every pixel block exact. OUT.png is
// written atomically. Exit status: 0 written, 2 bad usage or input (OUT.png untouched),
// 1 failure while writing.
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/path.h"
#include "disa/image.h"
#include "disa/plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(FILE *f) {
    return flag_usage(f, "usage: disa-grid DIR OUT.png [--cols N] [--rows-by index|class] [--max N] [--sep PX]\n"
                         "                [--scale S] [--labels NAME0,NAME1,...] [--title TEXT]\n");
}

// The plain sheet at `sheet`, enlarged and labelled into out (plot_labelled_image).
static int frame(const char *out, const char *sheet, const grid_report *r, int scale, const char *labels,
                 const char *title) {
    // Class k's name is field k of the comma-separated list; a class beyond it keeps its number.
    char *names = labels ? strdup(labels) : NULL, *field[1024];
    int nf = 0;
    for (char *t = names ? strtok(names, ",") : NULL; t && nf < 1024; t = strtok(NULL, ",")) field[nf++] = t;
    char num[GRID_MAX_ROW_CLASSES][24];
    const char *row_label[GRID_MAX_ROW_CLASSES];
    int rows = labels ? (r->rows < GRID_MAX_ROW_CLASSES ? r->rows : GRID_MAX_ROW_CLASSES) : 0;
    for (int k = 0; k < rows; k++) {
        int64_t c = r->row_class[k];
        snprintf(num[k], sizeof num[k], "class %lld", (long long)c);
        row_label[k] = c >= 0 && c < nf ? field[c] : num[k];
    }
    image_u8 im;
    int rc = png_read_u8(&im, sheet);
    if (!rc) {
        // The labels sit at the centre of each band of cells, separators included.
        rc = plot_labelled_image(out, im.data, im.w, im.h, im.c, scale, row_label, rows, title ? title : "");
        image_u8_free(&im);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    grid_params p;
    grid_params_init(&p);
    int scale = 1;
    const char *labels = NULL, *title = NULL;
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
        static const char *const known[] = {"cols", "max", "sep", "rows-by", "scale", "labels", "title", NULL};
        if (!flag_in(flag, known)) {
            fprintf(stderr, "disa-grid: unknown flag '%s' (disa-grid --help lists them)\n", a);
            return 2;
        }
        if (flag_value(argc, argv, &i, flag, &val) != 0) {
            fprintf(stderr, "disa-grid: %s\n", disa_errmsg());
            return 2;
        }
        int rc = 0;
        if (strcmp(flag, "cols") == 0) {
            rc = flag_int32(flag, val, 1, 1000, &p.cols);
        } else if (strcmp(flag, "max") == 0) {
            long long mx;
            if ((rc = flag_int(flag, val, 0, 100000000, &mx)) == 0) p.max = mx;
        } else if (strcmp(flag, "sep") == 0) {
            rc = flag_int32(flag, val, 0, 64, &p.sep);
        } else if (strcmp(flag, "scale") == 0) {
            rc = flag_int32(flag, val, 1, 16, &scale);
        } else if (strcmp(flag, "labels") == 0) {
            labels = val;
        } else if (strcmp(flag, "title") == 0) {
            title = val;
        } else if (strcmp(flag, "rows-by") == 0 && grid_rows_by_parse(val, &p.rows_by) != 0) {
            fprintf(stderr, "disa-grid: --%s\n", disa_errmsg());  // the message names rows-by without dashes
            return 2;
        }
        if (rc) {
            fprintf(stderr, "disa-grid: %s\n", disa_errmsg());
            return 2;
        }
    }
    if (npos != 2) return usage(stderr);
    if (path_check_writable(pos[1], 0, "OUT.png") != 0) {
        fprintf(stderr, "disa-grid: %s\n", disa_errmsg());
        return 2;
    }
    if (labels && p.rows_by != GRID_ROWS_BY_CLASS) {
        fprintf(stderr, "disa-grid: --labels names classes: it needs --rows-by class\n");
        return 2;
    }
    grid_report r;
    int framed = scale > 1 || labels || title;
    char sheet[4200];
    snprintf(sheet, sizeof sheet, "%s.sheet.%ld.png", pos[1], (long)getpid());
    int rc = grid_write(framed ? sheet : pos[1], pos[0], &p, &r);
    if (!rc && framed) rc = frame(pos[1], sheet, &r, scale, labels, title);
    if (framed) unlink(sheet);
    if (rc) {
        fprintf(stderr, "disa-grid: %s\n", disa_errmsg());
        return disa_exit_status(rc);
    }
    printf("disa-grid: wrote %s: %d x %d px%s, %d rows x %d cols by %s, %d images from %s\n", pos[1], r.width * scale,
           r.height * scale, framed ? " of images in a labelled frame" : "", r.rows, r.cols, grid_rows_by_name(p.rows_by),
           r.n, pos[0]);
    return 0;
}
