// random_weights.c: model files of deterministic random weights (dgen.h), for tests and
// benchmarks (include/disa/safetensors.h: st_write_generated).
#include "disa/dgen.h"
#include "disa/err.h"
#include "disa/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int st_write_generated(const st_bind_entry *tab, int n, uint64_t seed, const char *config_json, const char *path,
                       size_t *params) {
    st_writer *w = st_writer_new();
    float **bufs = calloc((size_t)(n > 0 ? n : 1), sizeof(float *));
    size_t total = 0;
    int rc = !w || !bufs ? disa_err(DISA_ENOMEM, "%s: out of memory", path) : 0;
    for (int i = 0; i < n && !rc; i++) {
        const st_bind_entry *t = &tab[i];
        size_t cnt = 1;
        for (int d = 0; d < t->ndim; d++) cnt *= (size_t)t->shape[d];
        if (!(bufs[i] = malloc(cnt ? cnt * sizeof(float) : 1))) {
            rc = disa_err(DISA_ENOMEM, "%s: out of memory at tensor '%s'", path, t->name);
            break;
        }
        const char *nm = t->name;
        int norm_gain = t->ndim == 1 && ends_with(nm, ".weight") && (strstr(nm, "norm") || ends_with(nm, "_ln.weight"));
        double scale = 0.02;
        if (t->ndim == 2 && ends_with(nm, ".weight") && strcmp(nm, "class_emb.weight") != 0)
            scale = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
        if (t->ndim == 4) scale = sqrt(3.0 / (double)(t->shape[1] * t->shape[2] * t->shape[3]));
        dgen_fill(bufs[i], cnt, seed * 1000003ull + (uint64_t)i, norm_gain ? 0.05 : scale);
        if (norm_gain)
            for (size_t k = 0; k < cnt; k++) bufs[i][k] += 1.0f;
        total += cnt;
        rc = st_writer_add(w, nm, ST_F32, t->ndim, t->shape, bufs[i]);
    }
    if (!rc) rc = st_writer_meta(w, "config", config_json);
    if (!rc) rc = st_writer_meta(w, "generator", "deterministic generator (random weights)");
    if (!rc) rc = st_writer_write(w, path);
    for (int i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    st_writer_delete(w);
    if (params) *params = total;
    return rc;
}
