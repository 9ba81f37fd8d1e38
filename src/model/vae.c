// vae.c: KL-16 decoder (LDM AutoencoderKL.decode), DESIGN §8.
// Mirrors LTH14/mar models/vae.py: AutoencoderKL.decode, Decoder.forward,
// ResnetBlock.forward (temb None, dropout off), AttnBlock.forward, Upsample.forward
// (nearest x2 then 3x3 conv), Normalize (GroupNorm(32, eps 1e-6)) and nonlinearity
// (swish); the input scaling is engine_mar.py's vae.decode(sampled_tokens / 0.2325).
//
// Memory plan: one image at a time in three rotating activation buffers, each the size
// of the largest feature map (128 x 256 x 256 floats for KL-16, 32 MB), plus the banded
// im2col scratch of conv2d_forward and the attention buffers of the middle block. A
// ResnetBlock needs three: its input stays alive for the skip connection while two
// buffers alternate between the normalised input and the conv outputs.
#include "disa/vae.h"
#include "disa/bf16.h"
#include "disa/blas.h"
#include "disa/err.h"
#include "disa/loader.h"
#include "disa/nn.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ----------------------------------------------------------------------------
// config

void vae_config_kl16(vae_config *c) {
    static const int mult[] = {1, 1, 2, 2, 4};
    memset(c, 0, sizeof *c);
    c->embed_dim = 16;
    c->z_channels = 16;
    c->ch = 128;
    c->n_levels = 5;
    memcpy(c->ch_mult, mult, sizeof mult);
    c->num_res_blocks = 2;
    c->out_ch = 3;
    c->resolution = 256;
    c->num_groups = 32;
    c->eps = 1e-6f;
    c->latent_scale = 0.2325f;
}

int vae_upscale(const vae_config *c) { return 1 << (c->n_levels - 1); }

static int cfg_pos(const cJSON *o, const char *key, float *out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
        return disa_err(DISA_ERANGE, "%s: config: '%s' must be a positive number", label, key);
    *out = (float)v->valuedouble;
    return 0;
}

static const char *const k_config_keys[] = {"format", "embed_dim", "z_channels", "ch", "ch_mult", "num_res_blocks",
                                            "out_ch", "resolution", "num_groups", "eps", "latent_scale",
                                            "attn_resolutions", NULL};

// Integral numbers of any size are read (LOADER_WIDE), and widths are capped so every
// feature-map size below fits an int with room to spare. A missing optional key keeps the
// KL-16 value (z_channels: embed_dim).
#define KEY(name, field, min, max, more)                                                                 \
    {.key = (name), .type = LOADER_INT, .offset = offsetof(vae_config, field), .lo = (min), .hi = (max), \
     .flags = LOADER_WIDE | (more)}
static const loader_key k_sizes[] = {
    KEY("embed_dim", embed_dim, 1, 4096, 0), KEY("ch", ch, 1, 4096, 0),
    KEY("num_res_blocks", num_res_blocks, 0, 64, 0)};
static const loader_key k_optional[] = {
    KEY("z_channels", z_channels, 1, 4096, LOADER_KEEP), KEY("out_ch", out_ch, 1, 64, LOADER_KEEP),
    KEY("resolution", resolution, 1, 1 << 16, LOADER_KEEP), KEY("num_groups", num_groups, 1, 4096, LOADER_KEEP)};
#undef KEY

static const loader_schema k_schema = {
    .format = "disa-vae-1", .not_one = "not a disa VAE file (convert kl16.ckpt with tools/convert_vae.py)",
    .known = k_config_keys};

int vae_config_parse(vae_config *c, const char *json, const char *label) {
    vae_config_kl16(c);  // defaults for the optional keys
    cJSON *o;
    int rc = loader_config_open(&o, json, label, &k_schema);
    if (rc) return rc;
    if ((rc = loader_config_read(c, o, k_sizes, (int)(sizeof k_sizes / sizeof *k_sizes), label)) != 0) goto fail;
    c->z_channels = c->embed_dim;
    if ((rc = loader_config_read(c, o, k_optional, (int)(sizeof k_optional / sizeof *k_optional), label)) ||
        (rc = cfg_pos(o, "eps", &c->eps, label)) || (rc = cfg_pos(o, "latent_scale", &c->latent_scale, label)))
        goto fail;
    const cJSON *mult = cJSON_GetObjectItemCaseSensitive(o, "ch_mult");
    int n = cJSON_IsArray(mult) ? cJSON_GetArraySize(mult) : -1;
    if (n < 1 || n > VAE_MAX_LEVELS) {
        rc = disa_err(DISA_EFORMAT, "%s: config 'ch_mult' must be an array of 1..%d integers", label, VAE_MAX_LEVELS);
        goto fail;
    }
    c->n_levels = n;
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(mult, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
            v->valuedouble > 64) {
            rc = disa_err(DISA_ERANGE, "%s: config 'ch_mult'[%d] must be an integer in 1..64", label, i);
            goto fail;
        }
        c->ch_mult[i] = v->valueint;
        int width = c->ch * c->ch_mult[i];
        if (width > 8192) {
            rc = disa_err(DISA_ERANGE, "%s: config: width ch*ch_mult[%d] = %d exceeds 8192", label, i, width);
            goto fail;
        }
        if (width % c->num_groups) {
            rc = disa_err(DISA_ERANGE, "%s: config: width ch*ch_mult[%d] = %d is not a multiple of num_groups %d",
                          label, i, width, c->num_groups);
            goto fail;
        }
    }
    const cJSON *attn = cJSON_GetObjectItemCaseSensitive(o, "attn_resolutions");
    if (attn && (!cJSON_IsArray(attn) || cJSON_GetArraySize(attn) != 0)) {
        rc = disa_err(DISA_EFORMAT, "%s: config 'attn_resolutions' must be empty: attention outside the "
                      "middle block is not supported (the KL-16 decoder has none)", label);
        goto fail;
    }
fail:
    cJSON_Delete(o);
    return rc;
}

// ----------------------------------------------------------------------------
// binding table

#define SH(...) (const int64_t[]){__VA_ARGS__}

static void tb_resblock(st_table *t, vae_resblock *r, int cin, int cout, const char *pre) {
    r->cin = cin;
    r->cout = cout;
    st_table_add(t, &r->norm1_w, 1, SH(cin), "%s.norm1.weight", pre);
    st_table_add(t, &r->norm1_b, 1, SH(cin), "%s.norm1.bias", pre);
    st_table_add(t, &r->conv1_w, 4, SH(cout, cin, 3, 3), "%s.conv1.weight", pre);
    st_table_add(t, &r->conv1_b, 1, SH(cout), "%s.conv1.bias", pre);
    st_table_add(t, &r->norm2_w, 1, SH(cout), "%s.norm2.weight", pre);
    st_table_add(t, &r->norm2_b, 1, SH(cout), "%s.norm2.bias", pre);
    st_table_add(t, &r->conv2_w, 4, SH(cout, cout, 3, 3), "%s.conv2.weight", pre);
    st_table_add(t, &r->conv2_b, 1, SH(cout), "%s.conv2.bias", pre);
    if (cin != cout) {
        st_table_add(t, &r->nin_w, 4, SH(cout, cin, 1, 1), "%s.nin_shortcut.weight", pre);
        st_table_add(t, &r->nin_b, 1, SH(cout), "%s.nin_shortcut.bias", pre);
    }
}

int vae_tensor_table(vae_model *m, st_bind_entry **tab, char **names, int *count) {
    const vae_config *c = &m->cfg;
    *tab = NULL;
    *names = NULL;
    *count = 0;
    int L = c->n_levels, nb = c->num_res_blocks + 1;
    if (m->up) free(m->up[0].block);
    free(m->up);
    m->up = calloc((size_t)L, sizeof(vae_level));
    vae_resblock *blocks = calloc((size_t)L * nb, sizeof(vae_resblock));
    // 2 post_quant_conv + 2 conv_in + 2 * 10 mid blocks + 10 attention + 4 end, then per
    // level 10 per block and 2 for the upsample conv.
    int n = 38 + L * (10 * nb + 2);
    st_table t;
    int trc = st_table_init(&t, n);
    if (!m->up || !blocks || trc) {
        free(m->up);
        m->up = NULL;
        free(blocks);
        st_table_free(&t);
        return disa_err(DISA_ENOMEM, "VAE tensor table: out of memory");
    }
    for (int i = 0; i < L; i++) m->up[i].block = blocks + (size_t)i * nb;
    int E = c->embed_dim, Z = c->z_channels, top = c->ch * c->ch_mult[L - 1];
    st_table_add(&t, &m->pq_w, 4, SH(Z, E, 1, 1), "post_quant_conv.weight");
    st_table_add(&t, &m->pq_b, 1, SH(Z), "post_quant_conv.bias");
    st_table_add(&t, &m->in_w, 4, SH(top, Z, 3, 3), "decoder.conv_in.weight");
    st_table_add(&t, &m->in_b, 1, SH(top), "decoder.conv_in.bias");
    tb_resblock(&t, &m->mid1, top, top, "decoder.mid.block_1");
    vae_attn *a = &m->attn;
    st_table_add(&t, &a->norm_w, 1, SH(top), "decoder.mid.attn_1.norm.weight");
    st_table_add(&t, &a->norm_b, 1, SH(top), "decoder.mid.attn_1.norm.bias");
    st_table_add(&t, &a->q_w, 4, SH(top, top, 1, 1), "decoder.mid.attn_1.q.weight");
    st_table_add(&t, &a->q_b, 1, SH(top), "decoder.mid.attn_1.q.bias");
    st_table_add(&t, &a->k_w, 4, SH(top, top, 1, 1), "decoder.mid.attn_1.k.weight");
    st_table_add(&t, &a->k_b, 1, SH(top), "decoder.mid.attn_1.k.bias");
    st_table_add(&t, &a->v_w, 4, SH(top, top, 1, 1), "decoder.mid.attn_1.v.weight");
    st_table_add(&t, &a->v_b, 1, SH(top), "decoder.mid.attn_1.v.bias");
    st_table_add(&t, &a->proj_w, 4, SH(top, top, 1, 1), "decoder.mid.attn_1.proj_out.weight");
    st_table_add(&t, &a->proj_b, 1, SH(top), "decoder.mid.attn_1.proj_out.bias");
    tb_resblock(&t, &m->mid2, top, top, "decoder.mid.block_2");
    // Levels run from the coarsest (L-1) to the finest (0), as Decoder.forward does, so
    // each block's input width is the previous block's output width.
    int cin = top;
    char pre[64];
    for (int i = L - 1; i >= 0; i--) {
        int cout = c->ch * c->ch_mult[i];
        for (int j = 0; j < nb; j++) {
            snprintf(pre, sizeof pre, "decoder.up.%d.block.%d", i, j);
            tb_resblock(&t, &m->up[i].block[j], cin, cout, pre);
            cin = cout;
        }
        if (i > 0) {
            st_table_add(&t, &m->up[i].up_w, 4, SH(cout, cout, 3, 3), "decoder.up.%d.upsample.conv.weight", i);
            st_table_add(&t, &m->up[i].up_b, 1, SH(cout), "decoder.up.%d.upsample.conv.bias", i);
        }
    }
    st_table_add(&t, &m->norm_out_w, 1, SH(cin), "decoder.norm_out.weight");
    st_table_add(&t, &m->norm_out_b, 1, SH(cin), "decoder.norm_out.bias");
    st_table_add(&t, &m->out_w, 4, SH(c->out_ch, cin, 3, 3), "decoder.conv_out.weight");
    st_table_add(&t, &m->out_b, 1, SH(c->out_ch), "decoder.conv_out.bias");
    return loader_table_end(&t, tab, names, count, "VAE");
}

// The other half of the same autoencoder (and its training loss) may ride along in a full
// checkpoint; any other unbound tensor means the config describes another model.
static const char *const k_other_half[] = {"encoder.", "quant_conv.", "loss.", NULL};
LOADER_MODEL(k_loader, vae_model, vae_config, vae_config_parse, vae_tensor_table, vae_close, k_other_half,
             "check ch_mult and num_res_blocks");

int vae_open(vae_model *m, const char *path) { return loader_open(&k_loader, m, &m->st, &m->cfg, path); }

void vae_close(vae_model *m) {
    vae_prepare(m, PRECISION_FP32, 0, 0);  // drops the bf16 form
    if (m->up) free(m->up[0].block);  // one allocation for all levels' blocks
    free(m->up);
    st_close(&m->st);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// sizes: one walk over the decoder shared by the scratch query, the FLOP count and
// vae_decode's checks, so they cannot disagree.

typedef struct { size_t act, col, qkv, scores; double flops; } vae_plan;

static void plan_conv(vae_plan *p, int cin, int cout, int H, int W, int k) {
    int pad = k / 2;
    size_t col = conv2d_scratch_floats(cin, H, W, k, k, 1, 1, pad, pad);
    if (col > p->col) p->col = col;
    p->flops += 2.0 * cout * cin * k * k * (double)H * W;
}

static void plan_act(vae_plan *p, int c, int H, int W) {
    size_t n = (size_t)c * H * W;
    if (n > p->act) p->act = n;
}

static void plan_resblock(vae_plan *p, int cin, int cout, int H, int W) {
    plan_act(p, cin, H, W);
    plan_act(p, cout, H, W);
    plan_conv(p, cin, cout, H, W, 3);
    plan_conv(p, cout, cout, H, W, 3);
    if (cin != cout) plan_conv(p, cin, cout, H, W, 1);
}

static void make_plan(vae_plan *p, const vae_config *c, int h, int w) {
    memset(p, 0, sizeof *p);
    int L = c->n_levels, top = c->ch * c->ch_mult[L - 1];
    plan_act(p, c->embed_dim, h, w);
    plan_act(p, c->z_channels, h, w);
    plan_conv(p, c->embed_dim, c->z_channels, h, w, 1);
    plan_conv(p, c->z_channels, top, h, w, 3);
    plan_resblock(p, top, top, h, w);
    size_t T = (size_t)h * w;
    p->qkv = T * 3 * (size_t)top;
    p->scores = attention_scratch_floats((int)T, top, 1);
    size_t s16 = attention_bf16_scratch_bytes((int)T, (int)T, 1) / sizeof(float) + 1;
    if (s16 > p->scores) p->scores = s16;  // the bf16 decoder's scores and probabilities
    p->flops += 2.0 * T * top * top * 4 + 2.0 * 2.0 * (double)T * T * top;
    plan_resblock(p, top, top, h, w);
    int cin = top, H = h, W = w;
    for (int i = L - 1; i >= 0; i--) {
        int cout = c->ch * c->ch_mult[i];
        for (int j = 0; j <= c->num_res_blocks; j++) {
            plan_resblock(p, cin, cout, H, W);
            cin = cout;
        }
        if (i > 0) {
            H *= 2;
            W *= 2;
            plan_act(p, cout, H, W);
            plan_conv(p, cout, cout, H, W, 3);
        }
    }
    plan_act(p, cin, H, W);
    plan_conv(p, cin, c->out_ch, H, W, 3);
}

// Sizes that make every feature map an int-indexable plane of at most 2^31 floats.
static int sizes_ok(const vae_config *c, int h, int w) {
    if (h < 1 || w < 1 || h > 65536 || w > 65536) return 0;
    double H = (double)h * vae_upscale(c), W = (double)w * vae_upscale(c);
    int wide = c->embed_dim > c->z_channels ? c->embed_dim : c->z_channels;
    for (int i = 0; i < c->n_levels; i++)
        if (c->ch * c->ch_mult[i] > wide) wide = c->ch * c->ch_mult[i];
    return H * W * wide < 2147483648.0 && (double)h * w * h * w < 2147483648.0;
}

size_t vae_decode_scratch_bytes(const vae_config *c, int B, int h, int w) {
    if (!sizes_ok(c, h, w)) return 0;
    vae_plan p;
    make_plan(&p, c, h, w);
    // Six arena blocks, each padded to the arena's 64-byte alignment. The bf16 decoder
    // needs no im2col but two bf16 activation buffers, and its attention scratch fits in
    // qkv + scores; the size covers either, so it does not depend on the precision.
    size_t col = p.col > p.act ? p.col : p.act;
    return (3 * p.act + col + p.qkv + p.scores) * sizeof(float) + 6 * 64;
}

double vae_decode_flops(const vae_config *c, int h, int w) {
    if (!sizes_ok(c, h, w)) return 0;
    vae_plan p;
    make_plan(&p, c, h, w);
    return p.flops;
}

// ----------------------------------------------------------------------------
// forward

typedef struct {
    size_t act;           // floats of the largest feature map
    float *buf[3];        // buf[0] holds the current activation; the others are free
    float *col;           // conv2d scratch
    float *qkv, *scores;  // middle-block attention
    int groups;
    float eps;
} vae_work;

static void rotate(vae_work *k, int cur) {
    // Make buf[cur] the current activation, keeping the other two as free buffers.
    float *t = k->buf[0];
    k->buf[0] = k->buf[cur];
    k->buf[cur] = t;
}

static void conv3x3(vae_work *k, float *out /*[cout,H,W]*/, const float *inp /*[cin,H,W]*/,
                    const float *wt /*[cout,cin,3,3]*/, const float *b /*[cout]*/, int cin, int cout, int H, int W) {
    conv2d_forward(out, inp, wt, b, k->col, 1, cin, H, W, cout, 3, 3, 1, 1, 1, 1);
}

// GroupNorm then swish, the `nonlinearity(norm(x))` pair that opens every conv.
static void norm_swish(vae_work *k, float *out /*[C,HW]*/, const float *inp /*[C,HW]*/,
                       const float *w /*[C]*/, const float *b /*[C]*/, int C, int HW) {
    groupnorm_forward(out, inp, w, b, 1, C, HW, k->groups, k->eps);
    silu_forward(out, out, (size_t)C * HW);
}

// ResnetBlock.forward: h = conv2(swish(norm2(conv1(swish(norm1(x)))))), out = shortcut(x) + h.
static void resblock(vae_work *k, const vae_resblock *r, int H, int W) {
    float *x = k->buf[0], *t = k->buf[1], *u = k->buf[2];
    int HW = H * W;
    norm_swish(k, t, x, r->norm1_w, r->norm1_b, r->cin, HW);
    conv3x3(k, u, t, r->conv1_w, r->conv1_b, r->cin, r->cout, H, W);
    norm_swish(k, u, u, r->norm2_w, r->norm2_b, r->cout, HW);
    conv3x3(k, t, u, r->conv2_w, r->conv2_b, r->cout, r->cout, H, W);
    const float *skip = x;
    if (r->nin_w) {
        // nin_shortcut: a 1x1 conv, one GEMM, no im2col.
        conv2d_forward(u, x, r->nin_w, r->nin_b, k->col, 1, r->cin, H, W, r->cout, 1, 1, 1, 1, 0, 0);
        skip = u;
    }
    size_t n = (size_t)r->cout * HW;
    for (size_t i = 0; i < n; i++) t[i] = skip[i] + t[i];
    rotate(k, 1);
}

// AttnBlock.forward: single-head attention over the T = h*w positions with channel
// width C, scale C^-0.5; q, k, v and proj_out are 1x1 convs, i.e. GEMMs on [C, T].
static void attnblock(vae_work *k, const vae_attn *a, int C, int T) {
    float *x = k->buf[0], *t = k->buf[1], *o = k->buf[2];
    groupnorm_forward(t, x, a->norm_w, a->norm_b, 1, C, T, k->groups, k->eps);
    // qkv[T, 3C] rows = positions, as attention_forward wants: [q | k | v] per row.
    // Each block is t^T W^T: t is stored [C, T], so it enters transposed.
    const float *wq[3] = {a->q_w, a->k_w, a->v_w}, *bq[3] = {a->q_b, a->k_b, a->v_b};
    for (int s = 0; s < 3; s++) {
        float *dst = k->qkv + (size_t)s * C;
        blas_sgemm(1, 1, T, C, C, 1.0f, t, T, wq[s], C, 0.0f, dst, 3 * C);
        for (int p = 0; p < T; p++)
            for (int ch = 0; ch < C; ch++) dst[(size_t)p * 3 * C + ch] += bq[s][ch];
    }
    attention_forward(o, k->qkv, k->scores, 1, T, C, 1);  // o [T, C]
    // proj_out back to channel-major: t[C, T] = Wp[C, C] o^T + b.
    blas_sgemm(0, 1, C, T, C, 1.0f, a->proj_w, C, o, C, 0.0f, t, T);
    for (int ch = 0; ch < C; ch++) {
        float *row = t + (size_t)ch * T;
        const float *xr = x + (size_t)ch * T;
        for (int p = 0; p < T; p++) row[p] = xr[p] + (row[p] + a->proj_b[ch]);
    }
    rotate(k, 1);
}

static void decode_one(const vae_model *m, vae_work *k, float *img /*[out_ch,H,W]*/,
                       const float *tok /*[embed,h,w]*/, int h, int w) {
    const vae_config *c = &m->cfg;
    int L = c->n_levels, top = c->ch * c->ch_mult[L - 1];
    int HW = h * w;
    // tokens / 0.2325 as a float32 division, the way engine_mar.py does it on the tensor.
    float *z = k->buf[1];
    for (int i = 0; i < c->embed_dim * HW; i++) z[i] = tok[i] / c->latent_scale;
    conv2d_forward(k->buf[2], z, m->pq_w, m->pq_b, k->col, 1, c->embed_dim, h, w, c->z_channels, 1, 1, 1, 1, 0, 0);
    conv3x3(k, k->buf[0], k->buf[2], m->in_w, m->in_b, c->z_channels, top, h, w);
    resblock(k, &m->mid1, h, w);
    attnblock(k, &m->attn, top, HW);
    resblock(k, &m->mid2, h, w);
    int C = top, H = h, W = w;
    for (int i = L - 1; i >= 0; i--) {
        for (int j = 0; j <= c->num_res_blocks; j++) {
            resblock(k, &m->up[i].block[j], H, W);
            C = m->up[i].block[j].cout;
        }
        if (i > 0) {
            upsample_nearest2x_forward(k->buf[1], k->buf[0], 1, C, H, W);
            H *= 2;
            W *= 2;
            conv3x3(k, k->buf[2], k->buf[1], m->up[i].up_w, m->up[i].up_b, C, C, H, W);
            rotate(k, 2);
        }
    }
    norm_swish(k, k->buf[1], k->buf[0], m->norm_out_w, m->norm_out_b, C, H * W);
    conv3x3(k, img, k->buf[1], m->out_w, m->out_b, C, c->out_ch, H, W);
}

// ----------------------------------------------------------------------------
// bf16 form: every convolution packed once for the resolution it runs at, on
// channels-last activations so a 1x1 convolution is a Linear and attention needs no
// transposes. GroupNorm, SiLU and the residual stream stay fp32; convolution inputs are
// bf16 (written so by the op before), outputs fp32 with the bias and, closing a
// ResnetBlock or the attention, the residual add as post-ops.

typedef struct vres_bf16 {
    bf16_conv conv1, conv2, nin;
} vres_bf16;

struct vae_bf16 {
    bf16_cache *cache;
    int h, w;             // latent size the convolutions are packed for
    bf16_conv pq, in, out;
    vres_bf16 mid1, mid2;
    bf16_linear qkv, proj;  // attention: q|k|v as one [3C, C] Linear, proj_out
    vres_bf16 *blocks;      // [n_levels * (num_res_blocks + 1)], level-major
    bf16_conv *up;          // [n_levels]
};

static void vres_free(vres_bf16 *r) {
    bf16_conv_free(&r->conv1);
    bf16_conv_free(&r->conv2);
    bf16_conv_free(&r->nin);
}

static void vae_bf16_delete(vae_bf16 *b, const vae_config *c) {
    if (!b) return;
    int nb = c->num_res_blocks + 1;
    bf16_conv_free(&b->pq), bf16_conv_free(&b->in), bf16_conv_free(&b->out);
    vres_free(&b->mid1), vres_free(&b->mid2);
    bf16_linear_free(&b->qkv), bf16_linear_free(&b->proj);
    for (int i = 0; b->blocks && i < c->n_levels * nb; i++) vres_free(&b->blocks[i]);
    for (int i = 0; b->up && i < c->n_levels; i++) bf16_conv_free(&b->up[i]);
    free(b->blocks);
    free(b->up);
    bf16_cache_delete(b->cache);
    free(b);
}

static int conv3(bf16_conv *cv, const float *w, const float *b, int cin, int cout, int H, int W) {
    return bf16_conv_init(cv, w, b, cin, cout, 3, 3, 1, 1, 1, 1, H, W);
}

static int pack_res(vres_bf16 *r, const vae_resblock *s, int H, int W) {
    int rc = conv3(&r->conv1, s->conv1_w, s->conv1_b, s->cin, s->cout, H, W);
    if (!rc) rc = conv3(&r->conv2, s->conv2_w, s->conv2_b, s->cout, s->cout, H, W);
    if (!rc && s->nin_w) rc = bf16_conv_init(&r->nin, s->nin_w, s->nin_b, s->cin, s->cout, 1, 1, 1, 1, 0, 0, H, W);
    return rc;
}

// q, k, v (each [C, C, 1, 1]) as one Linear with weight rows [q; k; v].
static int pack_qkv(bf16_linear *l, const vae_attn *a, int C) {
    size_t cc = (size_t)C * C;
    float *w = malloc(sizeof(float) * 3 * cc), *b = malloc(sizeof(float) * 3 * (size_t)C);
    if (!w || !b) {
        free(w), free(b);
        return disa_err(DISA_ENOMEM, "VAE attention: out of memory packing q, k, v");
    }
    const float *ws[3] = {a->q_w, a->k_w, a->v_w}, *bs[3] = {a->q_b, a->k_b, a->v_b};
    for (int i = 0; i < 3; i++) {
        memcpy(w + i * cc, ws[i], sizeof(float) * cc);
        memcpy(b + (size_t)i * C, bs[i], sizeof(float) * (size_t)C);
    }
    int rc = bf16_linear_init(l, w, b, C, 3 * C);
    free(w), free(b);
    return rc;
}

int vae_prepare(vae_model *m, precision_kind p, int h, int w) {
    const vae_config *c = &m->cfg;
    if (p == PRECISION_AUTO) p = precision_resolve(p, NULL, 0);
    if (p == PRECISION_FP32) {
        vae_bf16_delete(m->bf16, c);
        m->bf16 = NULL;
        m->precision = PRECISION_FP32;
        return 0;
    }
    if (m->bf16 && m->bf16->h == h && m->bf16->w == w) return 0;
    if (!sizes_ok(c, h, w)) return disa_err(DISA_EINVAL, "VAE: cannot prepare for %d x %d latents", h, w);
    int rc = bf16_available();
    if (rc) return rc;
    int L = c->n_levels, nb = c->num_res_blocks + 1, top = c->ch * c->ch_mult[L - 1];
    vae_bf16 *b = calloc(1, sizeof *b);
    if (!b || !(b->cache = bf16_cache_new(64)) || !(b->blocks = calloc((size_t)L * nb, sizeof(vres_bf16))) ||
        !(b->up = calloc((size_t)L, sizeof(bf16_conv)))) {
        vae_bf16_delete(b, c);
        return disa_err(DISA_ENOMEM, "VAE: out of memory for its bf16 form");
    }
    b->h = h, b->w = w;
    rc = bf16_conv_init(&b->pq, m->pq_w, m->pq_b, c->embed_dim, c->z_channels, 1, 1, 1, 1, 0, 0, h, w);
    if (!rc) rc = conv3(&b->in, m->in_w, m->in_b, c->z_channels, top, h, w);
    if (!rc) rc = pack_res(&b->mid1, &m->mid1, h, w);
    if (!rc) rc = pack_qkv(&b->qkv, &m->attn, top);
    if (!rc) rc = bf16_linear_init(&b->proj, m->attn.proj_w, m->attn.proj_b, top, top);
    if (!rc) rc = pack_res(&b->mid2, &m->mid2, h, w);
    int H = h, W = w, C = top;
    for (int i = L - 1; i >= 0 && !rc; i--) {
        for (int j = 0; j < nb && !rc; j++) {
            rc = pack_res(&b->blocks[(size_t)i * nb + j], &m->up[i].block[j], H, W);
            C = m->up[i].block[j].cout;
        }
        if (i > 0 && !rc) {
            H *= 2, W *= 2;
            rc = conv3(&b->up[i], m->up[i].up_w, m->up[i].up_b, C, C, H, W);
        }
    }
    if (!rc) rc = conv3(&b->out, m->out_w, m->out_b, C, c->out_ch, H, W);
    if (rc) {
        vae_bf16_delete(b, c);
        return disa_err_wrap(rc, "VAE, bf16: ");
    }
    vae_bf16_delete(m->bf16, c);
    m->bf16 = b;
    m->precision = PRECISION_BF16;
    return 0;
}

// The bf16 pass over one image: k->buf[0..2] fp32 [HW, C] maps (buf[0] the current
// one), k->col holds two bf16 maps (convolution inputs).
typedef struct { uint16_t *t, *u; } bf_maps;

// nonlinearity(norm(x)) as the bf16 input of the next convolution; f is fp32 scratch.
static void norm_swish_bf16(vae_work *k, uint16_t *out, float *f, const float *x, const float *w, const float *b,
                            int C, int HW) {
    groupnorm_nhwc_forward(f, x, w, b, HW, C, k->groups, k->eps);
    silu_bf16_forward(out, f, (size_t)HW * C);
}

static int resblock_bf16(vae_work *k, bf_maps *bm, bf16_cache *cache, const vae_resblock *r, const vres_bf16 *q,
                         int H, int W) {
    float *x = k->buf[0], *t = k->buf[1], *u = k->buf[2];
    int HW = H * W;
    norm_swish_bf16(k, bm->t, t, x, r->norm1_w, r->norm1_b, r->cin, HW);
    int rc = bf16_conv_forward(cache, &q->conv1, u, bm->t, 1, 0);
    if (rc) return rc;
    norm_swish_bf16(k, bm->u, u, u, r->norm2_w, r->norm2_b, r->cout, HW);
    if (!r->nin_w)  // x += conv2(...): the skip connection is the convolution's sum post-op
        return bf16_conv_forward(cache, &q->conv2, x, bm->u, 1, 1);
    bf16_from_f32(bm->t, x, (size_t)HW * r->cin);
    if ((rc = bf16_conv_forward(cache, &q->nin, t, bm->t, 1, 0)) != 0) return rc;
    rc = bf16_conv_forward(cache, &q->conv2, t, bm->u, 1, 1);
    rotate(k, 1);
    return rc;
}

static int attnblock_bf16(vae_work *k, bf_maps *bm, const vae_bf16 *q, const vae_attn *a, int C, int T) {
    float *x = k->buf[0], *t = k->buf[1];
    uint16_t *qkv = (uint16_t *)k->qkv;
    groupnorm_nhwc_forward(t, x, a->norm_w, a->norm_b, T, C, k->groups, k->eps);
    bf16_from_f32(bm->t, t, (size_t)T * C);
    int rc = bf16_linear_forward(q->cache, &q->qkv, qkv, 1, bm->t, NULL, T, BF16_EPI_NONE);
    if (!rc) rc = attention_bf16_forward(q->cache, bm->u, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, k->scores, 1, T, T, C, 1);
    return rc ? rc : bf16_linear_forward(q->cache, &q->proj, x, 0, bm->u, NULL, T, BF16_EPI_RESIDUAL);
}

static int decode_one_bf16(const vae_model *m, vae_work *k, float *img /*[out_ch,H,W]*/,
                           const float *tok /*[embed,h,w]*/, int h, int w) {
    const vae_config *c = &m->cfg;
    const vae_bf16 *q = m->bf16;
    bf16_cache *cache = q->cache;
    int L = c->n_levels, nb = c->num_res_blocks + 1, HW = h * w, rc;
    bf_maps bm = {(uint16_t *)k->col, (uint16_t *)k->col + k->act};
    // tokens / 0.2325 as engine_mar.py divides them, then channels-last bf16.
    float *z = k->buf[1];
    for (int e = 0; e < c->embed_dim; e++)
        for (int p = 0; p < HW; p++) z[(size_t)p * c->embed_dim + e] = tok[(size_t)e * HW + p] / c->latent_scale;
    bf16_from_f32(bm.t, z, (size_t)HW * c->embed_dim);
    if ((rc = bf16_conv_forward(cache, &q->pq, k->buf[2], bm.t, 1, 0)) != 0) return rc;
    bf16_from_f32(bm.t, k->buf[2], (size_t)HW * c->z_channels);
    if ((rc = bf16_conv_forward(cache, &q->in, k->buf[0], bm.t, 1, 0)) != 0) return rc;
    int C = c->ch * c->ch_mult[L - 1], H = h, W = w;
    if ((rc = resblock_bf16(k, &bm, cache, &m->mid1, &q->mid1, h, w)) != 0 ||
        (rc = attnblock_bf16(k, &bm, q, &m->attn, C, HW)) != 0 ||
        (rc = resblock_bf16(k, &bm, cache, &m->mid2, &q->mid2, h, w)) != 0)
        return rc;
    for (int i = L - 1; i >= 0; i--) {
        for (int j = 0; j < nb; j++) {
            if ((rc = resblock_bf16(k, &bm, cache, &m->up[i].block[j], &q->blocks[(size_t)i * nb + j], H, W)) != 0)
                return rc;
            C = m->up[i].block[j].cout;
        }
        if (i > 0) {
            upsample_nearest2x_nhwc_bf16(bm.t, k->buf[0], H, W, C);
            H *= 2, W *= 2;
            if ((rc = bf16_conv_forward(cache, &q->up[i], k->buf[0], bm.t, 1, 0)) != 0) return rc;
        }
    }
    norm_swish_bf16(k, bm.t, k->buf[1], k->buf[0], m->norm_out_w, m->norm_out_b, C, H * W);
    if ((rc = bf16_conv_forward(cache, &q->out, k->buf[1], bm.t, 1, 0)) != 0) return rc;
    for (int p = 0; p < H * W; p++)  // back to the image's channel-major layout
        for (int o = 0; o < c->out_ch; o++) img[(size_t)o * H * W + p] = k->buf[1][(size_t)p * c->out_ch + o];
    return 0;
}

int vae_decode(const vae_model *m, arena *a, float *img /*[B,out_ch,H,W]*/,
               const float *tokens /*[B,embed_dim,h,w]*/, int B, int h, int w) {
    const vae_config *c = &m->cfg;
    if (B < 0 || !sizes_ok(c, h, w))
        return disa_err(DISA_EINVAL, "vae_decode: latent %d x %d x %d (batch %d) out of range", c->embed_dim, h, w, B);
    size_t mark = arena_mark(a);
    vae_plan p;
    make_plan(&p, c, h, w);
    vae_work k = {.act = p.act, .groups = c->num_groups, .eps = c->eps};
    for (int i = 0; i < 3; i++) k.buf[i] = arena_floats(a, p.act);
    k.col = arena_floats(a, p.col > p.act ? p.col : p.act);
    k.qkv = arena_floats(a, p.qkv);
    k.scores = arena_floats(a, p.scores);
    if (!k.buf[0] || !k.buf[1] || !k.buf[2] || !k.col || !k.qkv || !k.scores) {
        arena_reset(a, mark);
        return disa_err_wrap(DISA_ENOMEM, "vae_decode (%d x %d latent needs %zu bytes, "
                             "vae_decode_scratch_bytes): ", h, w, vae_decode_scratch_bytes(c, B, h, w));
    }
    int up = vae_upscale(c), rc = 0;
    size_t in_n = (size_t)c->embed_dim * h * w, out_n = (size_t)c->out_ch * h * up * w * up;
    if (m->bf16 && (h != m->bf16->h || w != m->bf16->w))
        rc = disa_err(DISA_EINVAL, "vae_decode: the bf16 decoder is prepared for %d x %d latents, got %d x %d",
                      m->bf16->h, m->bf16->w, h, w);
    for (int b = 0; b < B && !rc; b++) {
        if (m->bf16) rc = decode_one_bf16(m, &k, img + b * out_n, tokens + b * in_n, h, w);
        else decode_one(m, &k, img + b * out_n, tokens + b * in_n, h, w);
    }
    arena_reset(a, mark);
    return rc;
}
