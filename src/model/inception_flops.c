// inception_flops.c: the FLOPs of the FID Inception forward (include/disa/inception.h),
// counted as inception.c issues its GEMMs; tests/unit/test_flops.c checks the count
// against the published Inception-v3 cost.
#include "disa/inception.h"
#include "disa/nn.h"

#include <stdlib.h>

// 2 M N K, the count blas_sgemm adds.
static uint64_t gemm(uint64_t M, uint64_t N, uint64_t K) { return 2ull * M * N * K; }


static uint64_t conv_flops(const inc_conv *k, int H, int W) {
    uint64_t OH = (uint64_t)conv2d_out_size(H, k->kh, k->sh, k->ph), OW = (uint64_t)conv2d_out_size(W, k->kw, k->sw, k->pw);
    return gemm(k->cout, OH * OW, (uint64_t)k->cin * k->kh * k->kw);
}

// Every convolution of a mixed block reads a map of the block's input size: the chains
// keep the size until their last convolution, the only one with stride 2.
static uint64_t convs_at(const inc_conv *const *list, int n, int H) {
    uint64_t f = 0;
    for (int i = 0; i < n; i++) f += conv_flops(list[i], H, H);
    return f;
}

uint64_t inception_flops(int logits) {
    inception_model *mp = calloc(1, sizeof *mp);  // geometry only: the table fills it
    st_bind_entry *tab = NULL;
    char *names = NULL;
    int count;
    if (!mp || inception_tensor_table(mp, &tab, &names, &count) != 0) {
        free(mp);
        return 0;
    }
    free(tab);
    free(names);
    const inception_model m = *mp;
    free(mp);
    int h = INCEPTION_SIZE;
    uint64_t f = conv_flops(&m.c1a, h, h);
    h = conv2d_out_size(h, 3, 2, 0);                       // 149
    f += conv_flops(&m.c2a, h, h);
    h = conv2d_out_size(h, 3, 1, 0);                       // 147
    f += conv_flops(&m.c2b, h, h);
    h = conv2d_out_size(h, 3, 2, 0);                       // max pool: 73
    f += conv_flops(&m.c3b, h, h);
    f += conv_flops(&m.c4a, h, h);
    h = conv2d_out_size(h, 3, 1, 0);                       // 71
    h = conv2d_out_size(h, 3, 2, 0);                       // max pool: 35
    const inc_a *A[3] = {&m.m5b, &m.m5c, &m.m5d};
    for (int i = 0; i < 3; i++) {
        const inc_conv *l[] = {&A[i]->b1x1, &A[i]->b5x5_1, &A[i]->b5x5_2, &A[i]->b3dbl_1,
                               &A[i]->b3dbl_2, &A[i]->b3dbl_3, &A[i]->pool};
        f += convs_at(l, 7, h);
    }
    const inc_conv *lb[] = {&m.m6a.b3x3, &m.m6a.b3dbl_1, &m.m6a.b3dbl_2, &m.m6a.b3dbl_3};
    f += convs_at(lb, 4, h);
    h = conv2d_out_size(h, 3, 2, 0);                       // 17
    const inc_c *Cb[4] = {&m.m6b, &m.m6c, &m.m6d, &m.m6e};
    for (int i = 0; i < 4; i++) {
        const inc_conv *l[] = {&Cb[i]->b1x1, &Cb[i]->b7_1, &Cb[i]->b7_2, &Cb[i]->b7_3, &Cb[i]->b7dbl_1,
                               &Cb[i]->b7dbl_2, &Cb[i]->b7dbl_3, &Cb[i]->b7dbl_4, &Cb[i]->b7dbl_5, &Cb[i]->pool};
        f += convs_at(l, 10, h);
    }
    const inc_conv *ld[] = {&m.m7a.b3_1, &m.m7a.b3_2, &m.m7a.b7x3_1, &m.m7a.b7x3_2, &m.m7a.b7x3_3, &m.m7a.b7x3_4};
    f += convs_at(ld, 6, h);
    h = conv2d_out_size(h, 3, 2, 0);                       // 8
    const inc_e *E[2] = {&m.m7b, &m.m7c};
    for (int i = 0; i < 2; i++) {
        const inc_conv *l[] = {&E[i]->b1x1, &E[i]->b3_1, &E[i]->b3_2a, &E[i]->b3_2b, &E[i]->b3dbl_1,
                               &E[i]->b3dbl_2, &E[i]->b3dbl_3a, &E[i]->b3dbl_3b, &E[i]->pool};
        f += convs_at(l, 9, h);
    }
    if (logits) f += gemm(1, INCEPTION_LOGITS, INCEPTION_FEAT);
    return f;
}

