// disa-mkmodel: write a model of any family with generated random weights, for tests and
// benchmarks of full-size shapes without real checkpoints (none can be committed).
//
//   disa-mkmodel (--preset NAME | --config JSON) --out FILE [--seed S]
//       NAME: mar_base|mar_large|mar_huge|xar_base|xar_large|xar_huge|flowar_small|
//       flowar_large|flowar_huge; JSON: a model file's "config" (its "format" names the family)
//   disa-mkmodel --vae kl16 --out FILE [--seed S]     (a KL-16 decoder of the official shape)
//
// Weights come from the deterministic generator (st_write_generated in safetensors.h;
// FlowAR computes its RoPE buffers, see flowar_write_generated).
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/family.h"
#include "disa/flags.h"
#include "disa/path.h"
#include "disa/vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    return flag_usage(f, "usage: disa-mkmodel (--preset NAME | --config JSON | --vae kl16) --out FILE [--seed S]\n"
                         "       presets: mar_base mar_large mar_huge xar_base xar_large xar_huge\n"
                         "                flowar_small flowar_large flowar_huge\n");
}

static int write_vae(const char *out, uint64_t seed, size_t *total) {
    vae_model v;
    memset(&v, 0, sizeof v);
    vae_config_kl16(&v.cfg);
    st_bind_entry *tab;
    char *names;
    int n, rc = vae_tensor_table(&v, &tab, &names, &n);
    if (rc) return rc;
    rc = st_write_generated(tab, n, seed, "{\"format\":\"disa-vae-1\",\"embed_dim\":16,\"z_channels\":16,"
                            "\"ch\":128,\"ch_mult\":[1,1,2,2,4],\"num_res_blocks\":2,\"out_ch\":3,"
                            "\"resolution\":256}", out, total);
    free(tab);
    free(names);
    vae_close(&v);
    return rc;
}

int main(int argc, char **argv) {
    cpu_blas_fix(argv);
    const char *preset = NULL, *config = NULL, *out = NULL, *vae = NULL;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (flag_is_help(argv[i])) return usage(stdout);
        char flag[32];
        const char *v;
        if (!flag_split(argv[i], 1, flag, sizeof flag, &v)) {
            fprintf(stderr, "disa-mkmodel: unexpected argument '%s'\n", argv[i]);
            return usage(stderr);
        }
        const char **dst = !strcmp(flag, "preset") ? &preset : !strcmp(flag, "config") ? &config
                         : !strcmp(flag, "out") ? &out : !strcmp(flag, "vae") ? &vae : NULL;
        if (!dst && strcmp(flag, "seed") != 0) {
            fprintf(stderr, "disa-mkmodel: unknown flag '%s' (disa-mkmodel --help lists them)\n", argv[i]);
            return 2;
        }
        if (flag_value(argc, argv, &i, flag, &v) != 0 || (!dst && flag_u64(flag, v, &seed) != 0)) {
            fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
            return 2;
        }
        if (dst) *dst = v;
    }
    if (!out || (!!preset + !!config + !!vae) != 1) {
        fprintf(stderr, "disa-mkmodel: give --out and one of --preset, --config, --vae\n");
        return usage(stderr);
    }
    if (path_check_writable(out, 0, "--out") != 0) {
        fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
        return 2;
    }
    // What to write, checked before anything is: the decoder, or a model of the family of
    // the preset or of the one the config's "format" names (else the first family, whose
    // parser then says what the format must be).
    const family *fam = NULL;
    void *m = NULL;
    int rc = 0;
    if (vae) {
        if (strcmp(vae, "kl16") != 0) rc = disa_err(DISA_EINVAL, "--vae: only the kl16 shape is known, got '%s'", vae);
    } else if (!(fam = preset ? family_for_preset(preset) : family_for_config(config))) {
        char names[256];
        rc = disa_err(DISA_EINVAL, "unknown preset '%s' (%s)", preset, family_presets_str(names, sizeof names));
    } else {
        rc = preset ? fam->preset(&m, preset) : fam->config(&m, config, "--config");
    }
    if (rc) {
        fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
        return 2;
    }
    size_t total = 0;
    rc = vae ? write_vae(out, seed, &total) : fam->write_random(m, out, seed, &total);
    if (fam) fam->close(m);
    if (rc) fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
    else printf("disa-mkmodel: wrote %s: %.1f M parameters\n", out, total / 1e6);
    return rc ? 1 : 0;
}
