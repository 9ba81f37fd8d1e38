// rope.c: 2-D rotary position embedding of xAR.
// Mirrors Qinyu-Allen-Zhao/DiSA xAR_DiSA/models/rope.py: VisionRotaryEmbeddingFast
// (__init__ builds the tables, forward applies them with rotate_half).
#include "disa/nn.h"

#include <math.h>

void rope_tables(float *cos_t /*[grid*grid, hd]*/, float *sin_t /*[grid*grid, hd]*/, int grid, int clusters,
                 int hd, float theta) {
    int dim = hd / 2;         // the official `dim`: channels per axis
    int nf = dim / 2;         // frequencies per axis, each used by one channel pair
    int ch = (int)lround(sqrt((double)clusters)), P = grid / ch;
    for (int r = 0; r < grid; r++)
        for (int c = 0; c < grid; c++) {
            // Group order: quadrant (r / P, c / P) group-major, raster inside it.
            int row = ((r / P) * ch + c / P) * P * P + (r % P) * P + c % P;
            float *co = cos_t + (size_t)row * hd, *si = sin_t + (size_t)row * hd;
            for (int a = 0; a < 2; a++) {
                int idx = a == 0 ? r : c;
                // float32 as torch: arange(grid) / grid * grid, arange(0, dim, 2) / dim,
                // theta ** that, its reciprocal, then the product with the position.
                float pos = (float)idx / (float)grid * (float)grid;
                for (int j = 0; j < nf; j++) {
                    float e = (float)(2 * j) / (float)dim;
                    float f = 1.0f / powf(theta, e);
                    float ang = pos * f;
                    float cv = (float)cos((double)ang), sv = (float)sin((double)ang);
                    co[a * dim + 2 * j] = co[a * dim + 2 * j + 1] = cv;
                    si[a * dim + 2 * j] = si[a * dim + 2 * j + 1] = sv;
                }
            }
        }
}

// FlowAR's rope2d_apply (flownn.c) is the same rotation, a twin kept on purpose: this one
// is built at the baseline ISA, that one in DISA_VEC copies that may fuse a * c - b * s
// into one FMA; one shared loop would change the low bits of one family's images.
void rope_forward(float *x /*[R,ld]*/, int ld, const float *cos_t /*[R,hd]*/, const float *sin_t /*[R,hd]*/,
                  int R, int heads, int hd) {
    for (int r = 0; r < R; r++) {
        const float *co = cos_t + (size_t)r * hd, *si = sin_t + (size_t)r * hd;
        for (int h = 0; h < heads; h++) {
            float *p = x + (size_t)r * ld + (size_t)h * hd;
            for (int i = 0; i < hd; i += 2) {
                float a = p[i], b = p[i + 1];
                p[i] = a * co[i] - b * si[i];
                p[i + 1] = b * co[i + 1] + a * si[i + 1];
            }
        }
    }
}
