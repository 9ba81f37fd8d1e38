// flowar_flops.c: FlowAR's FLOP model, GEMM by GEMM as src/model/flowar.c, flowhead.c and
// src/sample/flowar_sample.c issue them (include/disa/flowar_sample.h), so a run's
// blas_flops() equals it exactly (tests/unit/test_flowar.c checks that).
#include "disa/err.h"
#include "disa/flowar_sample.h"

#include <string.h>

#define LIN(rows, in, out) (2ull * (uint64_t)(rows) * (uint64_t)(in) * (uint64_t)(out))

// Attention of `images` images, P queries against T keys each, d channels in all heads:
// q k^T and p v, 2 P T hd each per head.
static uint64_t attn(int images, int P, int T, int d) { return 4ull * images * (uint64_t)P * T * d; }

uint64_t flowar_flops_forward(const flowar_config *c, int s, int B2) {
    const int N = c->scale[s] * c->scale[s], T = c->start[s] + N, E = c->enc_dim, D = c->dec_dim;
    const uint64_t R = (uint64_t)B2 * N;
    uint64_t f = 0;
    for (int i = 0; i < c->enc_depth; i++)
        f += LIN(R, E, 3 * E) + attn(B2, N, T, E) + LIN(R, E, E) + 2 * LIN(R, E, c->enc_hidden) +
             LIN(R, c->enc_hidden, E);
    f += LIN(R, E, D);  // decoder_embed
    for (int i = 0; i < c->dec_depth; i++)
        f += LIN(R, D, 3 * D) + attn(B2, N, T, D) + LIN(R, D, D) + 2 * LIN(R, D, c->dec_hidden) +
             LIN(R, c->dec_hidden, D);
    return f;
}

uint64_t flowar_flops_head_condition(const flowar_config *c, int images, int N) {
    const uint64_t R = (uint64_t)images * N;
    uint64_t f = LIN(R, c->dec_dim, c->diffloss_w);  // cond_embed
    if (c->cross) f += (uint64_t)c->diffloss_d * LIN(R, c->dec_dim, 2 * c->diffloss_w);  // crossattn.kv
    return f;
}

uint64_t flowar_flops_head_eval(const flowar_config *c, int images, int N) {
    const int W = c->diffloss_w, H = c->head_hidden, C = c->token_dim;
    const uint64_t R = (uint64_t)images * N;
    uint64_t f = LIN(1, 256, W) + LIN(1, W, W) + LIN(R, C, W);  // time_embed, input_proj
    uint64_t mlp = 2 * LIN(R, W, H) + LIN(R, H, W);
    for (int i = 0; i < c->diffloss_d; i++) {
        if (c->cross)
            f += LIN(1, W, 3 * W) + LIN(R, W, 3 * W) + LIN(R, W, 3 * W) + attn(images, N, N, W) + LIN(R, W, W) +
                 LIN(R, W, W) + attn(images, N, N, W) + LIN(R, W, W) + mlp;
        else
            f += LIN(R, W, 6 * W) + LIN(R, W, 3 * W) + attn(images, N, N, W) + LIN(R, W, W) + mlp;
    }
    return f + LIN(R, W, 2 * W) + LIN(R, W, C);  // final adaLN and linear
}

int flowar_flops_run(flowar_flops *out, flowar_flops_scale *per, const flowar_config *c, const flowar_params *p,
                     int B) {
    memset(out, 0, sizeof *out);
    int rc = flowar_params_check(p);
    if (rc) return rc;
    const int S = c->n_scales, cfg = p->cfg != 1.0, B2 = cfg ? 2 * B : B, E = c->enc_dim;
    double t[1002];
    for (int s = 0; s < S; s++) {
        const int N = c->scale[s] * c->scale[s];
        flowar_flops_scale fs = {0};
        // scale 0: every block's ada_lin of the class embeddings; later: z_proj on B rows.
        fs.transformer = flowar_flops_forward(c, s, B2) +
                         (s == 0 ? (uint64_t)(c->enc_depth + c->dec_depth) * LIN(B2, E, 6 * E)
                                 : LIN((uint64_t)B * N, c->token_dim, E));
        fs.n_steps = flowar_steps_at(p, s, S);
        double cfg_s = flowar_cfg_at(p, s, S);
        int pts = flowar_time_grid(t, fs.n_steps);
        fs.nfe = pts - 1;
        fs.n_guided = flowar_guided_steps(t, pts, cfg_s, p->guidance);
        fs.head = flowar_flops_head_condition(c, cfg && fs.n_guided > 0 ? B2 : B, N) +
                  (uint64_t)fs.n_guided * flowar_flops_head_eval(c, 2 * B, N) +
                  (uint64_t)(fs.nfe - fs.n_guided) * flowar_flops_head_eval(c, B, N);
        out->transformer += fs.transformer;
        out->head += fs.head;
        out->head_row_steps += (uint64_t)B * N * fs.nfe;
        out->tokens += (uint64_t)B * N;
        out->scales++;
        if (per) per[s] = fs;
    }
    return 0;
}
