// inception_random.c: an Inception file with random weights (include/disa/inception.h).
#include "disa/inception.h"
#include "disa/dgen.h"
#include "disa/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Random-weight Inception with the official tensor names (dgen, He-uniform convolutions,
// BatchNorm near identity), for tests and timing where the real weights are absent.
int inception_write_random(const char *out, uint64_t seed) {
    inception_model m;
    memset(&m, 0, sizeof m);
    st_bind_entry *tab = NULL;
    char *names = NULL;
    int n, rc = inception_tensor_table(&m, &tab, &names, &n);
    if (rc) return rc;
    st_writer *w = st_writer_new();
    float **bufs = calloc((size_t)n, sizeof(float *));
    if (!w || !bufs) {
        rc = disa_err(DISA_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        size_t cnt = 1;
        for (int d = 0; d < tab[i].ndim; d++) cnt *= (size_t)tab[i].shape[d];
        if (!(bufs[i] = malloc(cnt * sizeof(float)))) {
            rc = disa_err(DISA_ENOMEM, "out of memory");
            break;
        }
        const char *nm = tab[i].name;
        size_t L = strlen(nm);
        double scale = 0.1, off = 0;
        if (tab[i].ndim == 4) scale = sqrt(6.0 / (double)(tab[i].shape[1] * tab[i].shape[2] * tab[i].shape[3]));
        else if (L > 9 && strcmp(nm + L - 9, "bn.weight") == 0) scale = 0.25, off = 1;
        else if (L > 14 && strcmp(nm + L - 14, "bn.running_var") == 0) scale = 0.5, off = 1;
        else if (strcmp(nm, "fc.weight") == 0) scale = sqrt(3.0 / 2048);
        dgen_fill(bufs[i], cnt, seed + (uint64_t)i, scale);
        for (size_t k = 0; off != 0 && k < cnt; k++) bufs[i][k] = (float)(off + bufs[i][k]);
        rc = st_writer_add(w, nm, ST_F32, tab[i].ndim, tab[i].shape, bufs[i]);
    }
    if (rc == 0) rc = st_writer_meta(w, "config", "{\"format\":\"disa-inception-1\",\"random\":true}");
    if (rc == 0) rc = st_writer_write(w, out);
fail:
    for (int i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    st_writer_delete(w);
    free(tab);
    free(names);
    return rc;
}
