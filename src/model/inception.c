// inception.c: the FID Inception-v3 feature network (DESIGN §9).
// Mirrors toshas/torch-fidelity feature_extractor_inceptionv3.py:
// FeatureExtractorInceptionV3.forward (features '2048' and 'logits_unbiased'),
// BasicConv2d, InceptionA..InceptionE_2, and interpolate_compat_tensorflow.py:
// interpolate_bilinear_2d_like_tensorflow1x (method 'slow'); pytorch-fid's
// FIDInceptionA/C/E_1/E_2 are the same blocks under the same state_dict names.
#include "disa/inception.h"
#include "disa/err.h"
#include "disa/nn.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BN_EPS 1e-3  // BatchNorm2d(eps=0.001) in every BasicConv2d
#define N_CONVS 94

// ----------------------------------------------------------------------------
// geometry and names

static void geom(inc_conv *c, int cin, int cout, int kh, int kw, int s, int ph, int pw) {
    c->cin = cin, c->cout = cout, c->kh = kh, c->kw = kw, c->sh = c->sw = s, c->ph = ph, c->pw = pw;
}

typedef struct { inc_conv *c; char name[48]; } conv_ref;

static void add(conv_ref *l, int *n, inc_conv *c, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add(conv_ref *l, int *n, inc_conv *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l[*n].name, sizeof l[*n].name, fmt, ap);
    va_end(ap);
    l[(*n)++].c = c;
}

// Every BasicConv2d of the network with its geometry and state_dict prefix, in
// state_dict order. Sets the geometry of m as a side effect.
static int conv_list(inception_model *m, conv_ref *l) {
    int n = 0;
    geom(&m->c1a, 3, 32, 3, 3, 2, 0, 0), add(l, &n, &m->c1a, "Conv2d_1a_3x3");
    geom(&m->c2a, 32, 32, 3, 3, 1, 0, 0), add(l, &n, &m->c2a, "Conv2d_2a_3x3");
    geom(&m->c2b, 32, 64, 3, 3, 1, 1, 1), add(l, &n, &m->c2b, "Conv2d_2b_3x3");
    geom(&m->c3b, 64, 80, 1, 1, 1, 0, 0), add(l, &n, &m->c3b, "Conv2d_3b_1x1");
    geom(&m->c4a, 80, 192, 3, 3, 1, 0, 0), add(l, &n, &m->c4a, "Conv2d_4a_3x3");
    struct { inc_a *b; const char *nm; int cin, pf; } A[3] = {
        {&m->m5b, "Mixed_5b", 192, 32}, {&m->m5c, "Mixed_5c", 256, 64}, {&m->m5d, "Mixed_5d", 288, 64}};
    for (int i = 0; i < 3; i++) {
        inc_a *b = A[i].b;
        int ci = A[i].cin;
        geom(&b->b1x1, ci, 64, 1, 1, 1, 0, 0), add(l, &n, &b->b1x1, "%s.branch1x1", A[i].nm);
        geom(&b->b5x5_1, ci, 48, 1, 1, 1, 0, 0), add(l, &n, &b->b5x5_1, "%s.branch5x5_1", A[i].nm);
        geom(&b->b5x5_2, 48, 64, 5, 5, 1, 2, 2), add(l, &n, &b->b5x5_2, "%s.branch5x5_2", A[i].nm);
        geom(&b->b3dbl_1, ci, 64, 1, 1, 1, 0, 0), add(l, &n, &b->b3dbl_1, "%s.branch3x3dbl_1", A[i].nm);
        geom(&b->b3dbl_2, 64, 96, 3, 3, 1, 1, 1), add(l, &n, &b->b3dbl_2, "%s.branch3x3dbl_2", A[i].nm);
        geom(&b->b3dbl_3, 96, 96, 3, 3, 1, 1, 1), add(l, &n, &b->b3dbl_3, "%s.branch3x3dbl_3", A[i].nm);
        geom(&b->pool, ci, A[i].pf, 1, 1, 1, 0, 0), add(l, &n, &b->pool, "%s.branch_pool", A[i].nm);
    }
    inc_b *B = &m->m6a;
    geom(&B->b3x3, 288, 384, 3, 3, 2, 0, 0), add(l, &n, &B->b3x3, "Mixed_6a.branch3x3");
    geom(&B->b3dbl_1, 288, 64, 1, 1, 1, 0, 0), add(l, &n, &B->b3dbl_1, "Mixed_6a.branch3x3dbl_1");
    geom(&B->b3dbl_2, 64, 96, 3, 3, 1, 1, 1), add(l, &n, &B->b3dbl_2, "Mixed_6a.branch3x3dbl_2");
    geom(&B->b3dbl_3, 96, 96, 3, 3, 2, 0, 0), add(l, &n, &B->b3dbl_3, "Mixed_6a.branch3x3dbl_3");
    struct { inc_c *b; const char *nm; int c7; } Cs[4] = {
        {&m->m6b, "Mixed_6b", 128}, {&m->m6c, "Mixed_6c", 160}, {&m->m6d, "Mixed_6d", 160}, {&m->m6e, "Mixed_6e", 192}};
    for (int i = 0; i < 4; i++) {
        inc_c *b = Cs[i].b;
        int c7 = Cs[i].c7;
        const char *nm = Cs[i].nm;
        geom(&b->b1x1, 768, 192, 1, 1, 1, 0, 0), add(l, &n, &b->b1x1, "%s.branch1x1", nm);
        geom(&b->b7_1, 768, c7, 1, 1, 1, 0, 0), add(l, &n, &b->b7_1, "%s.branch7x7_1", nm);
        geom(&b->b7_2, c7, c7, 1, 7, 1, 0, 3), add(l, &n, &b->b7_2, "%s.branch7x7_2", nm);
        geom(&b->b7_3, c7, 192, 7, 1, 1, 3, 0), add(l, &n, &b->b7_3, "%s.branch7x7_3", nm);
        geom(&b->b7dbl_1, 768, c7, 1, 1, 1, 0, 0), add(l, &n, &b->b7dbl_1, "%s.branch7x7dbl_1", nm);
        geom(&b->b7dbl_2, c7, c7, 7, 1, 1, 3, 0), add(l, &n, &b->b7dbl_2, "%s.branch7x7dbl_2", nm);
        geom(&b->b7dbl_3, c7, c7, 1, 7, 1, 0, 3), add(l, &n, &b->b7dbl_3, "%s.branch7x7dbl_3", nm);
        geom(&b->b7dbl_4, c7, c7, 7, 1, 1, 3, 0), add(l, &n, &b->b7dbl_4, "%s.branch7x7dbl_4", nm);
        geom(&b->b7dbl_5, c7, 192, 1, 7, 1, 0, 3), add(l, &n, &b->b7dbl_5, "%s.branch7x7dbl_5", nm);
        geom(&b->pool, 768, 192, 1, 1, 1, 0, 0), add(l, &n, &b->pool, "%s.branch_pool", nm);
    }
    inc_d *D = &m->m7a;
    geom(&D->b3_1, 768, 192, 1, 1, 1, 0, 0), add(l, &n, &D->b3_1, "Mixed_7a.branch3x3_1");
    geom(&D->b3_2, 192, 320, 3, 3, 2, 0, 0), add(l, &n, &D->b3_2, "Mixed_7a.branch3x3_2");
    geom(&D->b7x3_1, 768, 192, 1, 1, 1, 0, 0), add(l, &n, &D->b7x3_1, "Mixed_7a.branch7x7x3_1");
    geom(&D->b7x3_2, 192, 192, 1, 7, 1, 0, 3), add(l, &n, &D->b7x3_2, "Mixed_7a.branch7x7x3_2");
    geom(&D->b7x3_3, 192, 192, 7, 1, 1, 3, 0), add(l, &n, &D->b7x3_3, "Mixed_7a.branch7x7x3_3");
    geom(&D->b7x3_4, 192, 192, 3, 3, 2, 0, 0), add(l, &n, &D->b7x3_4, "Mixed_7a.branch7x7x3_4");
    struct { inc_e *b; const char *nm; int cin, maxp; } E[2] = {{&m->m7b, "Mixed_7b", 1280, 0},
                                                               {&m->m7c, "Mixed_7c", 2048, 1}};
    for (int i = 0; i < 2; i++) {
        inc_e *b = E[i].b;
        int ci = E[i].cin;
        const char *nm = E[i].nm;
        b->max_pool = E[i].maxp;
        geom(&b->b1x1, ci, 320, 1, 1, 1, 0, 0), add(l, &n, &b->b1x1, "%s.branch1x1", nm);
        geom(&b->b3_1, ci, 384, 1, 1, 1, 0, 0), add(l, &n, &b->b3_1, "%s.branch3x3_1", nm);
        geom(&b->b3_2a, 384, 384, 1, 3, 1, 0, 1), add(l, &n, &b->b3_2a, "%s.branch3x3_2a", nm);
        geom(&b->b3_2b, 384, 384, 3, 1, 1, 1, 0), add(l, &n, &b->b3_2b, "%s.branch3x3_2b", nm);
        geom(&b->b3dbl_1, ci, 448, 1, 1, 1, 0, 0), add(l, &n, &b->b3dbl_1, "%s.branch3x3dbl_1", nm);
        geom(&b->b3dbl_2, 448, 384, 3, 3, 1, 1, 1), add(l, &n, &b->b3dbl_2, "%s.branch3x3dbl_2", nm);
        geom(&b->b3dbl_3a, 384, 384, 1, 3, 1, 0, 1), add(l, &n, &b->b3dbl_3a, "%s.branch3x3dbl_3a", nm);
        geom(&b->b3dbl_3b, 384, 384, 3, 1, 1, 1, 0), add(l, &n, &b->b3dbl_3b, "%s.branch3x3dbl_3b", nm);
        geom(&b->pool, ci, 192, 1, 1, 1, 0, 0), add(l, &n, &b->pool, "%s.branch_pool", nm);
    }
    return n;
}

#define SH(...) (const int64_t[]){__VA_ARGS__}

static void entry(st_bind_entry *e, const char *name, const float **dst, int ndim, const int64_t *shape) {
    e->name = name;
    e->dst = dst;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
}

int inception_tensor_table(inception_model *m, st_bind_entry **tab, char **names, int *count) {
    conv_ref l[N_CONVS + 1];
    int nc = conv_list(m, l);
    if (nc != N_CONVS) return disa_err(DISA_EINTERNAL, "Inception: %d convolutions listed, expected %d", nc, N_CONVS);
    static const char *suffix[5] = {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
    int n = 5 * nc + 2;
    const size_t name_len = 64;
    *tab = calloc((size_t)n, sizeof(st_bind_entry));
    *names = malloc((size_t)n * name_len);
    if (!*tab || !*names) {
        free(*tab);
        free(*names);
        *tab = NULL, *names = NULL;
        return disa_err(DISA_ENOMEM, "Inception tensor table: out of memory");
    }
    int k = 0;
    for (int i = 0; i < nc; i++) {
        inc_conv *c = l[i].c;
        const float **dst[5] = {&c->w, &c->gamma, &c->beta, &c->mean, &c->var};
        for (int s = 0; s < 5; s++, k++) {
            char *nm = *names + (size_t)k * name_len;
            snprintf(nm, name_len, "%s.%s", l[i].name, suffix[s]);
            if (s == 0) entry(&(*tab)[k], nm, dst[s], 4, SH(c->cout, c->cin, c->kh, c->kw));
            else entry(&(*tab)[k], nm, dst[s], 1, SH(c->cout));
        }
    }
    entry(&(*tab)[k++], "fc.weight", &m->fc_w, 2, SH(INCEPTION_LOGITS, INCEPTION_FEAT));
    entry(&(*tab)[k++], "fc.bias", &m->fc_b, 1, SH(INCEPTION_LOGITS));
    *count = k;
    return 0;
}

int inception_fold(inception_model *m) {
    conv_ref l[N_CONVS + 1];
    int nc = conv_list(m, l);
    size_t total = 0;
    for (int i = 0; i < nc; i++) total += (size_t)l[i].c->cout * (l[i].c->cin * l[i].c->kh * l[i].c->kw + 1);
    free(m->folded);
    m->folded = malloc(total * sizeof(float));
    if (!m->folded) return disa_err(DISA_ENOMEM, "Inception: cannot allocate %zu bytes for folded weights", total * 4);
    float *p = m->folded;
    for (int i = 0; i < nc; i++) {
        inc_conv *c = l[i].c;
        size_t k = (size_t)c->cin * c->kh * c->kw;
        c->fw = p;
        c->fb = p + (size_t)c->cout * k;
        p = c->fb + c->cout;
        for (int o = 0; o < c->cout; o++) {
            double v = (double)c->var[o] + BN_EPS;
            if (!(v > 0))
                return disa_err(DISA_ERANGE, "Inception: %s.bn.running_var[%d] = %g gives a non-positive variance",
                                l[i].name, o, (double)c->var[o]);
            // eval BatchNorm: y = (x - mean) * s + beta with s = gamma / sqrt(var + eps),
            // folded into the bias-free convolution before it.
            double s = (double)c->gamma[o] / sqrt(v);
            for (size_t j = 0; j < k; j++) c->fw[(size_t)o * k + j] = (float)(c->w[(size_t)o * k + j] * s);
            c->fb[o] = (float)((double)c->beta[o] - (double)c->mean[o] * s);
        }
    }
    return 0;
}

// The tensors of an opened file bound to m, every missing, mis-shaped or unexpected one named.
static int inception_bind(inception_model *m) {
    st_bind_entry *tab = NULL;
    char *names = NULL;
    int n, rc = inception_tensor_table(m, &tab, &names, &n);
    if (rc) return rc;
    rc = st_bind(&m->st, tab, n);
    if (!rc) rc = st_check_unexpected(&m->st, tab, n, NULL, "not the pt_inception-2015-12-05 layout");
    free(tab);
    free(names);
    return rc ? disa_err_wrap(rc, "Inception weights (convert with tools/convert_inception.py): ") : 0;
}

void inception_close(inception_model *m) {
    free(m->folded);
    st_close(&m->st);
    memset(m, 0, sizeof *m);
}

int inception_open(inception_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    int rc = st_open(&m->st, path);
    if (rc) return rc;
    if (!(rc = inception_bind(m))) rc = inception_fold(m);
    if (rc) inception_close(m);
    return rc;
}

// ----------------------------------------------------------------------------
// TF1 bilinear resize. Source coordinate of output o is o * (in / out) (no half-pixel
// shift), with `in / out` rounded to float32 once (torch.tensor(scale, float32)) and
// the product computed in float32; lo = trunc, hi = min(lo + 1, in - 1), weight =
// src - lo; the blend is a + (b - a) * w along x, then along y, every operation rounded
// to float32 separately as the reference's tensor ops are. fp-contract is off so that no
// compiler turns a multiply-add into an FMA with a different rounding.

typedef struct { int lo, hi; float w; } tf1_tap;

static void tf1_taps(tf1_tap *t, int in, int out) __attribute__((optimize("fp-contract=off")));
static void tf1_taps(tf1_tap *t, int in, int out) {
    float scale = (float)((double)in / (double)out);
    for (int o = 0; o < out; o++) {
        float g = (float)o * scale;
        int lo = (int)g;
        t[o].lo = lo;
        t[o].hi = lo + 1 < in - 1 ? lo + 1 : in - 1;
        t[o].w = g - (float)lo;
    }
}

void inception_resize_tf1(float *out, const uint8_t *in, int C, int H, int W, int OH, int OW)
    __attribute__((optimize("fp-contract=off")));
void inception_resize_tf1(float *out /*[C,OH,OW]*/, const uint8_t *in /*[C,H,W]*/, int C, int H, int W, int OH,
                          int OW) {
    tf1_tap ty[2048], tx[2048];
    tf1_taps(ty, H, OH);
    tf1_taps(tx, W, OW);
    for (int c = 0; c < C; c++) {
        const uint8_t *x = in + (size_t)c * H * W;
        float *y = out + (size_t)c * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            const uint8_t *r0 = x + (size_t)ty[oy].lo * W, *r1 = x + (size_t)ty[oy].hi * W;
            float wy = ty[oy].w;
            for (int ox = 0; ox < OW; ox++) {
                float wx = tx[ox].w;
                float a00 = r0[tx[ox].lo], a01 = r0[tx[ox].hi], a10 = r1[tx[ox].lo], a11 = r1[tx[ox].hi];
                float top = a00 + (a01 - a00) * wx;
                float bot = a10 + (a11 - a10) * wx;
                y[(size_t)oy * OW + ox] = top + (bot - top) * wy;
            }
        }
    }
}

void inception_hwc_to_chw(uint8_t *out /*[3,H,W]*/, const uint8_t *in /*[H,W,C]*/, int H, int W, int C) {
    size_t P = (size_t)H * W;
    for (size_t p = 0; p < P; p++)
        for (int c = 0; c < 3; c++) out[(size_t)c * P + p] = in[p * C + (C >= 3 ? c : 0)];
}

// ----------------------------------------------------------------------------
// forward

size_t inception_scratch_bytes(void) { return (size_t)64 << 20; }

// BasicConv2d on one image: out[cout, OH, OW] = relu(conv(in) folded with BN).
static int conv_run(const inc_conv *c, arena *a, float *out, const float *in, int H, int W, int *OH, int *OW) {
    size_t mark = arena_mark(a);
    size_t ns = conv2d_scratch_floats(c->cin, H, W, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw);
    float *scr = arena_floats(a, ns ? ns : 1);
    if (!scr) return DISA_ENOMEM;
    conv2d_forward(out, in, c->fw, c->fb, scr, 1, c->cin, H, W, c->cout, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw);
    int oh = conv2d_out_size(H, c->kh, c->sh, c->ph), ow = conv2d_out_size(W, c->kw, c->sw, c->pw);
    relu_forward(out, out, (size_t)c->cout * oh * ow);
    if (OH) *OH = oh;
    if (OW) *OW = ow;
    arena_reset(a, mark);
    return 0;
}

// One branch: n convolutions in sequence, x -> out, the results between them alternating
// between t[0] and t[1] (each large enough for any of them). All take the input size
// H x W: only a branch's last convolution may change it.
static int chain(const inc_conv *const *c, int n, arena *a, float *out, const float *x, float *const t[2], int H,
                 int W) {
    const float *in = x;
    for (int i = 0; i < n; i++) {
        float *o = i == n - 1 ? out : t[i % 2];
        int rc = conv_run(c[i], a, o, in, H, W, NULL, NULL);
        if (rc) return rc;
        in = o;
    }
    return 0;
}

#define RUN(c, out, in, H, W)                                   \
    do {                                                        \
        if ((rc = conv_run((c), a, (out), (in), (H), (W), NULL, NULL)) != 0) goto fail; \
    } while (0)

// InceptionA: x[Cin, H, W] -> y[224 + pool_features, H, W].
static int block_a(const inc_a *b, arena *a, float *y, const float *x, int H, int W) {
    int rc = 0;
    size_t mark = arena_mark(a), P = (size_t)H * W;
    float *t1 = arena_floats(a, 64 * P), *t2 = arena_floats(a, 96 * P), *t3 = arena_floats(a, (size_t)b->pool.cin * P);
    if (!t1 || !t2 || !t3) return DISA_ENOMEM;
    RUN(&b->b1x1, y, x, H, W);
    RUN(&b->b5x5_1, t1, x, H, W);
    RUN(&b->b5x5_2, y + 64 * P, t1, H, W);
    RUN(&b->b3dbl_1, t1, x, H, W);
    RUN(&b->b3dbl_2, t2, t1, H, W);
    RUN(&b->b3dbl_3, y + 128 * P, t2, H, W);
    // TF's average pool ignores the zero padding: count_include_pad=False.
    avgpool2d_forward(t3, x, 1, b->pool.cin, H, W, 3, 3, 1, 1, 1, 1, 0);
    RUN(&b->pool, y + 224 * P, t3, H, W);
fail:
    arena_reset(a, mark);
    return rc;
}

// The grid reductions, InceptionB (x[288, 35, 35] -> y[768, 17, 17]) and InceptionD
// (x[768, 17, 17] -> y[1280, 8, 8]): two branches ending in a stride-2 convolution and
// a 3x3 stride-2 max pool of x, concatenated in that order.
static int block_reduce(arena *a, float *y, const float *x, int Cin, int H, int W, const inc_conv *const *b1, int n1,
                        const inc_conv *const *b2, int n2) {
    size_t mark = arena_mark(a), P = (size_t)H * W;
    size_t OP = (size_t)conv2d_out_size(H, 3, 2, 0) * conv2d_out_size(W, 3, 2, 0);
    int tc = 1;
    for (int i = 0; i < n1 - 1; i++) tc = b1[i]->cout > tc ? b1[i]->cout : tc;
    for (int i = 0; i < n2 - 1; i++) tc = b2[i]->cout > tc ? b2[i]->cout : tc;
    float *t[2] = {arena_floats(a, (size_t)tc * P), arena_floats(a, (size_t)tc * P)};
    const int c1 = b1[n1 - 1]->cout, c2 = b2[n2 - 1]->cout;
    int rc = !t[0] || !t[1] ? DISA_ENOMEM : chain(b1, n1, a, y, x, t, H, W);
    if (!rc) rc = chain(b2, n2, a, y + (size_t)c1 * OP, x, t, H, W);
    if (!rc) maxpool2d_forward(y + (size_t)(c1 + c2) * OP, x, 1, Cin, H, W, 3, 3, 2, 2, 0, 0);
    arena_reset(a, mark);
    return rc;
}

static int block_b(const inc_b *b, arena *a, float *y, const float *x, int H, int W) {
    const inc_conv *const b1[] = {&b->b3x3}, *const b2[] = {&b->b3dbl_1, &b->b3dbl_2, &b->b3dbl_3};
    return block_reduce(a, y, x, b->b3x3.cin, H, W, b1, 1, b2, 3);
}

// InceptionC: x[768, 17, 17] -> y[768, 17, 17].
static int block_c(const inc_c *b, arena *a, float *y, const float *x, int H, int W) {
    int rc = 0, c7 = b->b7_1.cout;
    size_t mark = arena_mark(a), P = (size_t)H * W;
    float *t1 = arena_floats(a, (size_t)c7 * P), *t2 = arena_floats(a, (size_t)c7 * P), *t3 = arena_floats(a, 768 * P);
    if (!t1 || !t2 || !t3) return DISA_ENOMEM;
    RUN(&b->b1x1, y, x, H, W);
    RUN(&b->b7_1, t1, x, H, W);
    RUN(&b->b7_2, t2, t1, H, W);
    RUN(&b->b7_3, y + 192 * P, t2, H, W);
    RUN(&b->b7dbl_1, t1, x, H, W);
    RUN(&b->b7dbl_2, t2, t1, H, W);
    RUN(&b->b7dbl_3, t1, t2, H, W);
    RUN(&b->b7dbl_4, t2, t1, H, W);
    RUN(&b->b7dbl_5, y + 384 * P, t2, H, W);
    avgpool2d_forward(t3, x, 1, 768, H, W, 3, 3, 1, 1, 1, 1, 0);
    RUN(&b->pool, y + 576 * P, t3, H, W);
fail:
    arena_reset(a, mark);
    return rc;
}

static int block_d(const inc_d *b, arena *a, float *y, const float *x, int H, int W) {
    const inc_conv *const b1[] = {&b->b3_1, &b->b3_2}, *const b2[] = {&b->b7x3_1, &b->b7x3_2, &b->b7x3_3, &b->b7x3_4};
    return block_reduce(a, y, x, b->b3_1.cin, H, W, b1, 2, b2, 4);
}

// InceptionE_1 / E_2: x[Cin, 8, 8] -> y[2048, 8, 8].
static int block_e(const inc_e *b, arena *a, float *y, const float *x, int H, int W) {
    int rc = 0, ci = b->pool.cin;
    size_t mark = arena_mark(a), P = (size_t)H * W;
    float *t1 = arena_floats(a, 448 * P), *t2 = arena_floats(a, 384 * P), *t3 = arena_floats(a, (size_t)ci * P);
    if (!t1 || !t2 || !t3) return DISA_ENOMEM;
    RUN(&b->b1x1, y, x, H, W);
    RUN(&b->b3_1, t1, x, H, W);
    RUN(&b->b3_2a, y + 320 * P, t1, H, W);
    RUN(&b->b3_2b, y + 704 * P, t1, H, W);
    RUN(&b->b3dbl_1, t1, x, H, W);
    RUN(&b->b3dbl_2, t2, t1, H, W);
    RUN(&b->b3dbl_3a, y + 1088 * P, t2, H, W);
    RUN(&b->b3dbl_3b, y + 1472 * P, t2, H, W);
    // The TF graph max-pools in the last block (a quirk every FID port keeps).
    if (b->max_pool) maxpool2d_forward(t3, x, 1, ci, H, W, 3, 3, 1, 1, 1, 1);
    else avgpool2d_forward(t3, x, 1, ci, H, W, 3, 3, 1, 1, 1, 1, 0);
    RUN(&b->pool, y + 1856 * P, t3, H, W);
fail:
    arena_reset(a, mark);
    return rc;
}

// One image: img[3, H, W] uint8 -> pool[2048].
static int forward_one(const inception_model *m, arena *a, float *pool, const uint8_t *img, int H, int W) {
    const int S = INCEPTION_SIZE;
    int rc = 0;
    // Two ping-pong buffers, each as large as the largest activation (64 x 147 x 147).
    const size_t big = (size_t)64 * 147 * 147;
    float *A = arena_floats(a, big), *B = arena_floats(a, big);
    if (!A || !B) return DISA_ENOMEM;
    inception_resize_tf1(A, img, 3, H, W, S, S);
    // (x - 128) / 128: exact in float32, as torch-fidelity (the graph multiplies by 1/128).
    for (size_t i = 0; i < (size_t)3 * S * S; i++) A[i] = (A[i] - 128.0f) / 128.0f;
    int h = S, w = S, oh, ow;
    if ((rc = conv_run(&m->c1a, a, B, A, h, w, &oh, &ow)) != 0) return rc;  // 32 x 149 x 149
    h = oh, w = ow;
    if ((rc = conv_run(&m->c2a, a, A, B, h, w, &oh, &ow)) != 0) return rc;  // 32 x 147 x 147
    h = oh, w = ow;
    if ((rc = conv_run(&m->c2b, a, B, A, h, w, &oh, &ow)) != 0) return rc;  // 64 x 147 x 147
    h = oh, w = ow;
    maxpool2d_forward(A, B, 1, 64, h, w, 3, 3, 2, 2, 0, 0);                  // 64 x 73 x 73
    h = conv2d_out_size(h, 3, 2, 0), w = conv2d_out_size(w, 3, 2, 0);
    if ((rc = conv_run(&m->c3b, a, B, A, h, w, &oh, &ow)) != 0) return rc;  // 80 x 73 x 73
    if ((rc = conv_run(&m->c4a, a, A, B, h, w, &oh, &ow)) != 0) return rc;  // 192 x 71 x 71
    h = oh, w = ow;
    maxpool2d_forward(B, A, 1, 192, h, w, 3, 3, 2, 2, 0, 0);                 // 192 x 35 x 35
    h = conv2d_out_size(h, 3, 2, 0), w = conv2d_out_size(w, 3, 2, 0);
    if ((rc = block_a(&m->m5b, a, A, B, h, w)) != 0) return rc;             // 256 x 35 x 35
    if ((rc = block_a(&m->m5c, a, B, A, h, w)) != 0) return rc;             // 288
    if ((rc = block_a(&m->m5d, a, A, B, h, w)) != 0) return rc;             // 288
    if ((rc = block_b(&m->m6a, a, B, A, h, w)) != 0) return rc;             // 768 x 17 x 17
    h = conv2d_out_size(h, 3, 2, 0), w = conv2d_out_size(w, 3, 2, 0);
    if ((rc = block_c(&m->m6b, a, A, B, h, w)) != 0) return rc;
    if ((rc = block_c(&m->m6c, a, B, A, h, w)) != 0) return rc;
    if ((rc = block_c(&m->m6d, a, A, B, h, w)) != 0) return rc;
    if ((rc = block_c(&m->m6e, a, B, A, h, w)) != 0) return rc;             // 768 x 17 x 17 in B
    if ((rc = block_d(&m->m7a, a, A, B, h, w)) != 0) return rc;             // 1280 x 8 x 8
    h = conv2d_out_size(h, 3, 2, 0), w = conv2d_out_size(w, 3, 2, 0);
    if ((rc = block_e(&m->m7b, a, B, A, h, w)) != 0) return rc;             // 2048 x 8 x 8
    if ((rc = block_e(&m->m7c, a, A, B, h, w)) != 0) return rc;
    adaptive_avgpool_1x1(pool, A, 1, INCEPTION_FEAT, h * w);
    return 0;
}

int inception_forward(const inception_model *m, arena *a, float *pool, float *logits, const uint8_t *img, int N,
                      int H, int W) {
    if (H < 1 || W < 1 || H > 1024 || W > 1024)
        return disa_err(DISA_EINVAL, "Inception: image size %dx%d outside 1..1024", H, W);
    size_t mark = arena_mark(a);
    float *feat = arena_floats(a, INCEPTION_FEAT);
    if (!feat) return DISA_ENOMEM;
    for (int n = 0; n < N; n++) {
        size_t inner = arena_mark(a);
        int rc = forward_one(m, a, feat, img + (size_t)n * 3 * H * W, H, W);
        arena_reset(a, inner);
        if (rc) {
            arena_reset(a, mark);
            return rc;
        }
        if (pool) memcpy(pool + (size_t)n * INCEPTION_FEAT, feat, sizeof(float) * INCEPTION_FEAT);
        // torch-fidelity 'logits_unbiased': x.mm(fc.weight.T), no bias.
        if (logits) linear_forward(logits + (size_t)n * INCEPTION_LOGITS, feat, m->fc_w, NULL, 1, INCEPTION_FEAT,
                                   INCEPTION_LOGITS);
    }
    arena_reset(a, mark);
    return 0;
}
