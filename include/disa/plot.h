// plot.h: figures drawn by gnuplot (Debian package gnuplot-nox, its pngcairo terminal).
//
// gnuplot rather than a plotting library linked in: the one C plotting library Debian
// packages with PNG output (PLplot) pulls Qt, wxWidgets and gfortran into every build;
// gnuplot is one program, needed only on the node that draws, and the script it runs is
// kept next to the figure (OUT.gp) so a user can restyle or re-plot the numbers.
// PNGs are written atomically (gnuplot writes OUT.tmp.PID, renamed when it succeeds).
#ifndef DISA_PLOT_H
#define DISA_PLOT_H
#include <stdint.h>

// One marker: its coordinates, a text label beside it, and whether it is the reference
// point the others are compared with (drawn as a different marker).
typedef struct plot_point {
    double x, y;
    const char *label;
    int reference;
} plot_point;

// One panel of a figure: a scatter of labelled points.
typedef struct plot_panel {
    const char *title, *xlabel, *ylabel;
    const plot_point *pts;
    int n;
} plot_panel;

// 0 when gnuplot runs here, else DISA_ENOTFOUND with a message naming the package.
int plot_available(void);

// `n_panels` panels side by side in one PNG (640 x 440 px per panel, taller beyond 20
// points), each point a marker with its label in the panel's key, a title over all; a panel
// whose y values span more than a factor of 5 gets a log y axis. Points with a NaN coordinate are left out. Writes OUT.gp (the script with
// the data inline) and OUT. Errors: DISA_ENOTFOUND (no gnuplot; the script is still
// written), DISA_EIO (gnuplot failed: its first message is quoted), DISA_EINVAL.
int plot_scatter(const char *out, const char *title, const plot_panel *panels, int n_panels);

// An image (pix [H, W, C], C = 1 or 3) enlarged `scale` times by nearest neighbour, with
// one text label to the left of each of `rows` equal horizontal bands (rows may be 0) and
// a title above. Pixel blocks are exact: gnuplot draws only the frame and the enlarged
// pixels are pasted into it. No OUT.gp is kept.
int plot_labelled_image(const char *out, const uint8_t *pix, int W, int H, int C, int scale,
                        const char *const *row_labels, int rows, const char *title);

#endif
