// mar_patch.c: MAR's token layout back to an image or latent (DESIGN §8).
// Mirrors LTH14/mar models/mar.py: MAR.unpatchify.
#include "disa/mar.h"

#include <stddef.h>

void mar_unpatchify(float *out, const float *tokens, int B, int seq_h, int c, int p) {
    // tokens [B, h, w, c, p, q] -> out [B, c, h, p, w, q]
    int H = seq_h * p, Cp = c * p * p;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < seq_h; h++)
            for (int w = 0; w < seq_h; w++) {
                const float *tk = tokens + (((size_t)b * seq_h + h) * seq_h + w) * Cp;
                for (int ch = 0; ch < c; ch++)
                    for (int i = 0; i < p; i++)
                        for (int j = 0; j < p; j++)
                            out[(((size_t)b * c + ch) * H + h * p + i) * H + w * p + j] = tk[(ch * p + i) * p + j];
            }
}
