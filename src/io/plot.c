// plot.c: figures through gnuplot (include/disa/plot.h).
#include "disa/plot.h"
#include "disa/err.h"
#include "disa/image.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

// Run `gnuplot script`, its output into log (kept only when it fails). 0, DISA_ENOTFOUND
// when there is no gnuplot, DISA_EIO quoting gnuplot's first message otherwise.
static int run_gnuplot(const char *script, const char *log) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        unlink(log);
        return disa_err(rc == ENOENT ? DISA_ENOTFOUND : DISA_EIO, "cannot run gnuplot (Debian package gnuplot-nox): %s; "
                        "the plot script is %s", strerror(rc), script);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {  // the shell-less spawn found no program
        unlink(log);
        return disa_err(DISA_ENOTFOUND, "gnuplot is not installed (Debian package gnuplot-nox); the plot script is %s",
                        script);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char first[256] = "";
        FILE *f = fopen(log, "r");
        while (f && fgets(first, sizeof first, f))
            if (first[0] != '\n' && !strstr(first, "line 0:")) break;
        if (f) fclose(f);
        first[strcspn(first, "\n")] = '\0';
        return disa_err(DISA_EIO, "gnuplot failed on %s: %s (full output in %s)", script, first, log);
    }
    unlink(log);
    return 0;
}

int plot_available(void) {
    // A fresh file in the temporary folder (mkstemps: never one someone else put there).
    const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : P_tmpdir;
    char script[4200], log[4220];
    snprintf(script, sizeof script, "%s/disa-plot-probe.XXXXXX.gp", dir);
    int fd = mkstemps(script, 3);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        if (fd >= 0) close(fd);
        return disa_err(DISA_EIO, "%s: cannot write: %s", script, strerror(errno));
    }
    snprintf(log, sizeof log, "%s.log", script);
    fputs("exit\n", f);
    fclose(f);
    int rc = run_gnuplot(script, log);
    unlink(script);
    return rc;
}

// A string as a gnuplot single-quoted literal: '' inside stands for one quote.
static void put_quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; s && *s; s++) {
        if (*s == '\'') fputc('\'', f);
        if (*s != '\n') fputc(*s, f);
    }
    fputc('\'', f);
}

// Write the script with `emit`, run it into OUT.tmp.PID, rename to OUT.
static int render(const char *out, int (*emit)(FILE *f, const char *tmp, void *ctx), void *ctx, int keep_script) {
    char script[4200], tmp[4200], log[4210];
    size_t n = strlen(out);
    if (n + 32 > sizeof script) return disa_err(DISA_EINVAL, "%s: path too long for a plot", out);
    const char *dot = strrchr(out, '.');
    int stem = dot && strcmp(dot, ".png") == 0 ? (int)(dot - out) : (int)n;
    snprintf(script, sizeof script, "%.*s.gp", stem, out);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    snprintf(log, sizeof log, "%s.log", script);
    FILE *f = fopen(script, "w");
    if (!f) return disa_err(DISA_EIO, "%s: cannot write: %s", script, strerror(errno));
    int rc = emit(f, tmp, ctx);
    if (fclose(f) != 0 && !rc) rc = disa_err(DISA_EIO, "%s: cannot write: %s", script, strerror(errno));
    if (!rc) rc = run_gnuplot(script, log);
    if (!rc && rename(tmp, out) != 0) rc = disa_err(DISA_EIO, "%s: cannot rename into place: %s", out, strerror(errno));
    if (rc) unlink(tmp);
    if (!keep_script && rc != DISA_ENOTFOUND) unlink(script);
    return rc;
}

// ----------------------------------------------------------------------------
// scatter

typedef struct {
    const char *title;
    const plot_panel *p;
    int n;
} scatter_ctx;

static int emit_scatter(FILE *f, const char *tmp, void *vctx) {
    const scatter_ctx *c = vctx;
    fprintf(f, "# Written by disa; run `gnuplot THIS_FILE` to redraw. Data inline: x y reference label.\n");
    int most = 0;
    for (int k = 0; k < c->n; k++) {
        fprintf(f, "$p%d << EOD\n", k);
        for (int i = 0; i < c->p[k].n; i++) {
            const plot_point *q = &c->p[k].pts[i];
            // A left-out point keeps its row (as NaN) so marker i is variant i in every panel.
            if (isnan(q->x) || isnan(q->y)) fprintf(f, "NaN NaN ");
            else fprintf(f, "%.9g %.9g ", q->x, q->y);
            fprintf(f, "%d \"", q->reference ? 1 : 0);
            for (const char *s = q->label ? q->label : ""; *s; s++) fputc(*s == '"' ? '\'' : *s, f);
            fputs("\"\n", f);
        }
        fprintf(f, "EOD\n");
        if (c->p[k].n > most) most = c->p[k].n;
    }
    // One key entry per point (labels beside clustered points overlap), right of each panel.
    fprintf(f, "set terminal pngcairo size %d,%d noenhanced font 'sans,10' background 'white'\nset output ", 640 * c->n,
            most > 20 ? 440 + 16 * (most - 20) : 440);
    put_quoted(f, tmp);
    fprintf(f, "\nset multiplot layout 1,%d title ", c->n);
    put_quoted(f, c->title ? c->title : "");
    fprintf(f, "\nset grid\nset key outside right top vertical Left reverse\n"
               "set offsets graph 0.05, graph 0.05, graph 0.08, graph 0.08\n");
    fprintf(f, "set linetype cycle 10\n");
    for (int k = 0; k < c->n; k++) {
        fprintf(f, "set title ");
        put_quoted(f, c->p[k].title ? c->p[k].title : "");
        fprintf(f, "\nset xlabel ");
        put_quoted(f, c->p[k].xlabel ? c->p[k].xlabel : "");
        fprintf(f, "\nset ylabel ");
        put_quoted(f, c->p[k].ylabel ? c->p[k].ylabel : "");
        // y spanning more than a factor of 5 (an FID of 600 next to ones of 80) on a log scale, so
        // the close points stay apart.
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < c->p[k].n; i++) {
            double y = c->p[k].pts[i].y;
            if (isnan(y) || isnan(c->p[k].pts[i].x)) continue;
            lo = y < lo ? y : lo;
            hi = y > hi ? y : hi;
        }
        fprintf(f, "\n%s\n", lo > 0 && hi > 5 * lo ? "set logscale y" : "unset logscale y");
        // Point i is data row i: the reference as a large open square, the others filled.
        fprintf(f, "plot ");
        for (int i = 0; i < c->p[k].n; i++) {
            const plot_point *q = &c->p[k].pts[i];
            fprintf(f, "%s$p%d every ::%d::%d using 1:2 with points pt %d ps %s lc %d title ", i ? ", \\\n     " : "", k,
                    i, i, q->reference ? 4 : 7, q->reference ? "2.2" : "1.6", i + 1);
            put_quoted(f, q->label ? q->label : "");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    return ferror(f) ? disa_err(DISA_EIO, "cannot write the plot script") : 0;
}

int plot_scatter(const char *out, const char *title, const plot_panel *panels, int n_panels) {
    if (n_panels < 1 || n_panels > 8) return disa_err(DISA_EINVAL, "%s: %d panels (1..8)", out, n_panels);
    scatter_ctx c = {title, panels, n_panels};
    return render(out, emit_scatter, &c, 1);
}

// ----------------------------------------------------------------------------
// labelled image

// gnuplot draws the frame (title and row labels around an empty area); the enlarged
// pixels are pasted into that area here, so no pixel goes through the renderer's
// resampling (pngcairo places an image up to a pixel off and blends its edges).
typedef struct {
    int W, H, rows;
    const char *const *labels;
    const char *title;
} image_ctx;

enum { IMG_LEFT = 110, IMG_TOP = 40, IMG_RIGHT = 6, IMG_BOTTOM = 6 };

static int emit_frame(FILE *f, const char *tmp, void *vctx) {
    const image_ctx *c = vctx;
    int TW = IMG_LEFT + c->W + IMG_RIGHT, TH = IMG_TOP + c->H + IMG_BOTTOM;
    fprintf(f, "set terminal pngcairo size %d,%d noenhanced font 'sans,11' background 'white'\nset output ", TW, TH);
    put_quoted(f, tmp);
    fprintf(f, "\nset lmargin at screen %.9f\nset rmargin at screen %.9f\n", (double)IMG_LEFT / TW,
            (double)(IMG_LEFT + c->W) / TW);
    fprintf(f, "set tmargin at screen %.9f\nset bmargin at screen %.9f\n", 1.0 - (double)IMG_TOP / TH,
            (double)IMG_BOTTOM / TH);
    fprintf(f, "unset key\nunset border\nunset xtics\nset xrange [0:%d]\nset yrange [%d:0]\nset title ", c->W, c->H);
    put_quoted(f, c->title ? c->title : "");
    fprintf(f, "\n");
    if (c->rows > 0) {
        fprintf(f, "set ytics scale 0 nomirror (");
        for (int r = 0; r < c->rows; r++) {
            fprintf(f, "%s", r ? ", " : "");
            put_quoted(f, c->labels && c->labels[r] ? c->labels[r] : "");
            fprintf(f, " %.3f", (r + 0.5) * c->H / c->rows);
        }
        fprintf(f, ")\n");
    } else {
        fprintf(f, "unset ytics\n");
    }
    fprintf(f, "plot NaN notitle\n");
    return ferror(f) ? disa_err(DISA_EIO, "cannot write the plot script") : 0;
}

int plot_labelled_image(const char *out, const uint8_t *pix, int W, int H, int C, int scale,
                        const char *const *row_labels, int rows, const char *title) {
    if (W < 1 || H < 1 || (C != 1 && C != 3) || scale < 1 || scale > 64 || rows < 0 || rows > H)
        return disa_err(DISA_EINVAL, "%s: bad image for a plot (%d x %d x %d, scale %d, %d rows)", out, W, H, C, scale, rows);
    if ((int64_t)W * scale * H * scale > (int64_t)1 << 26)
        return disa_err(DISA_ERANGE, "%s: %d x %d enlarged %dx is too large to plot", out, W, H, scale);
    int SW = W * scale, SH = H * scale;
    char frame[4200];
    snprintf(frame, sizeof frame, "%s.frame.%ld.png", out, (long)getpid());
    image_ctx c = {SW, SH, rows, row_labels, title};
    int rc = render(frame, emit_frame, &c, 0);
    if (rc) return rc;
    image_u8 im;
    rc = png_read_u8(&im, frame);
    unlink(frame);
    if (rc) return rc;
    if (im.c != 3 || im.w < IMG_LEFT + SW || im.h < IMG_TOP + SH) {
        rc = disa_err(DISA_EFORMAT, "%s: gnuplot drew a %d x %d x %d frame, expected at least %d x %d x 3", out, im.w,
                      im.h, im.c, IMG_LEFT + SW, IMG_TOP + SH);
    } else {
        for (int y = 0; y < SH; y++) {
            const uint8_t *src = pix + (size_t)(y / scale) * W * C;
            uint8_t *dst = im.data + ((size_t)(IMG_TOP + y) * im.w + IMG_LEFT) * 3;
            for (int x = 0; x < SW; x++)
                for (int k = 0; k < 3; k++) dst[3 * x + k] = src[(size_t)(x / scale) * C + (C == 3 ? k : 0)];
        }
        rc = png_write_u8(out, im.data, im.w, im.h, 3, NULL, 0);
    }
    image_u8_free(&im);
    return rc;
}
