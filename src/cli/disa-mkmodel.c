// disa-mkmodel: write a MAR model with generated random weights, for tests and
// benchmarks of full-size shapes without real checkpoints (none can be committed).
//
//   disa-mkmodel (--preset mar_base|mar_large|mar_huge | --config JSON) --out FILE [--seed S]
//   disa-mkmodel --vae kl16 --out FILE [--seed S]     (a KL-16 decoder of the official shape)
//
// Weights come from the deterministic generator (tests/golden/README.md): Linear
// weights uniform in the Xavier range, norm weights near 1, everything else within
// +-0.02, so activations keep realistic magnitudes through deep stacks.
#include "disa/cpu.h"
#include "disa/dgen.h"
#include "disa/err.h"
#include "disa/mar.h"
#include "disa/vae.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void) {
    fprintf(stderr, "usage: disa-mkmodel (--preset mar_base|mar_large|mar_huge | --config JSON | --vae kl16) --out FILE "
                    "[--seed S]\n");
    return 2;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    const char *preset = NULL, *config = NULL, *out = NULL, *vae = NULL;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        if (strcmp(argv[i], "--preset") == 0) preset = argv[++i];
        else if (strcmp(argv[i], "--config") == 0) config = argv[++i];
        else if (strcmp(argv[i], "--out") == 0) out = argv[++i];
        else if (strcmp(argv[i], "--vae") == 0) vae = argv[++i];
        else if (strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "disa-mkmodel: unknown flag '%s'\n", argv[i]);
            return usage();
        }
    }
    if (!out || (!!preset + !!config + !!vae) != 1) return usage();
    mar_model m;
    vae_model v;
    memset(&m, 0, sizeof m);
    memset(&v, 0, sizeof v);
    int rc = 0;
    if (vae) {
        if (strcmp(vae, "kl16") != 0) rc = disa_err(DISA_EINVAL, "--vae: only the kl16 shape is known, got '%s'", vae);
        vae_config_kl16(&v.cfg);
    } else {
        rc = preset ? mar_config_preset(&m.cfg, preset) : mar_config_parse(&m.cfg, config, "--config");
    }
    if (rc) {
        fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
        return 2;
    }
    st_bind_entry *tab;
    char *names;
    int n;
    if ((vae ? vae_tensor_table(&v, &tab, &names, &n) : mar_tensor_table(&m, &tab, &names, &n)) != 0) {
        fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
        return 1;
    }
    st_writer *w = st_writer_new();
    float **bufs = calloc((size_t)n, sizeof(float *));
    size_t total = 0;
    for (int i = 0; i < n && w && bufs; i++) {
        size_t cnt = 1;
        for (int d = 0; d < tab[i].ndim; d++) cnt *= (size_t)tab[i].shape[d];
        bufs[i] = malloc(cnt * sizeof(float));
        if (!bufs[i]) {
            rc = disa_err(DISA_ENOMEM, "out of memory at tensor '%s'", tab[i].name);
            break;
        }
        const char *nm = tab[i].name;
        int is_norm_w = ends_with(nm, "norm1.weight") || ends_with(nm, "norm2.weight") ||
                        ends_with(nm, "norm.weight") || ends_with(nm, "_ln.weight") || ends_with(nm, "in_ln.weight");
        double scale = 0.02;
        if (tab[i].ndim == 2 && ends_with(nm, ".weight") && strcmp(nm, "class_emb.weight") != 0)
            scale = sqrt(6.0 / (double)(tab[i].shape[0] + tab[i].shape[1]));
        if (tab[i].ndim == 4)  // conv: keep activations O(1) layer after layer
            scale = sqrt(3.0 / (double)(tab[i].shape[1] * tab[i].shape[2] * tab[i].shape[3]));
        // GroupNorm gains of the decoder ("norm1.weight" etc. of a 1-D tensor) start at 1.
        if (vae && tab[i].ndim == 1 && strstr(nm, "norm") && ends_with(nm, ".weight")) is_norm_w = 1;
        dgen_fill(bufs[i], cnt, seed * 1000003ull + (unsigned long long)i, is_norm_w ? 0.05 : scale);
        if (is_norm_w)
            for (size_t k = 0; k < cnt; k++) bufs[i][k] += 1.0f;
        total += cnt;
        if ((rc = st_writer_add(w, nm, ST_F32, tab[i].ndim, tab[i].shape, bufs[i])) != 0) break;
    }
    char json[1024];
    if (vae)
        snprintf(json, sizeof json, "{\"format\":\"disa-vae-1\",\"embed_dim\":16,\"z_channels\":16,\"ch\":128,"
                 "\"ch_mult\":[1,1,2,2,4],\"num_res_blocks\":2,\"out_ch\":3,\"resolution\":256}");
    else
        mar_config_to_json(&m.cfg, json, sizeof json);
    if (!rc && w) rc = st_writer_meta(w, "config", json);
    if (!rc && w) rc = st_writer_meta(w, "generator", "disa-mkmodel (random weights)");
    if (!rc && w) rc = st_writer_write(w, out);
    if (!w || !bufs) rc = disa_err(DISA_ENOMEM, "out of memory");
    if (rc) fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
    else printf("disa-mkmodel: wrote %s: %d tensors, %.1f M parameters\n", out, n, total / 1e6);
    for (int i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs);
    st_writer_delete(w);
    free(tab);
    free(names);
    free(m.enc);
    free(m.dec);
    free(m.head.blocks);
    if (vae) vae_close(&v);
    return rc ? 1 : 0;
}
