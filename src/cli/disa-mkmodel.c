// disa-mkmodel: write a MAR or FlowAR model with generated random weights, for tests and
// benchmarks of full-size shapes without real checkpoints (none can be committed).
//
//   disa-mkmodel (--preset mar_base|mar_large|mar_huge|flowar_small|flowar_large|flowar_huge | --config JSON)
//                --out FILE [--seed S]
//   disa-mkmodel --vae kl16 --out FILE [--seed S]     (a KL-16 decoder of the official shape)
//
// Weights come from the deterministic generator (st_write_generated in safetensors.h;
// flowar_write_generated for FlowAR, whose RoPE buffers are computed). A --config is a
// FlowAR one when its "format" is "disa-flowar-1".
#include "disa/cpu.h"
#include "disa/err.h"
#include "disa/flags.h"
#include "disa/flowar.h"
#include "disa/mar.h"
#include "disa/path.h"
#include "disa/vae.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f) {
    fprintf(f, "usage: disa-mkmodel (--preset mar_base|mar_large|mar_huge|flowar_small|flowar_large|flowar_huge | "
               "--config JSON | --vae kl16) --out FILE [--seed S]\n");
    return f == stdout ? 0 : 2;
}

// A --config whose "format" is FlowAR's (anything else goes to the MAR parser, which
// names the problem).
static int is_flowar_config(const char *json) {
    cJSON *o = cJSON_Parse(json);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "format");
    int yes = cJSON_IsString(f) && strcmp(f->valuestring, "disa-flowar-1") == 0;
    cJSON_Delete(o);
    return yes;
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
    // FlowAR: its presets by name, its configs by their format.
    if ((preset && strncmp(preset, "flowar_", 7) == 0) || (config && is_flowar_config(config))) {
        flowar_config fc;
        if (preset ? flowar_config_preset(&fc, preset) : flowar_config_parse(&fc, config, "--config")) {
            fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
            return 2;
        }
        size_t total = 0;
        if (flowar_write_generated(&fc, seed, out, &total) != 0) {
            fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
            return 1;
        }
        printf("disa-mkmodel: wrote %s: FlowAR, %.1f M parameters\n", out, total / 1e6);
        return 0;
    }
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
    char json[1024];
    if (vae)
        snprintf(json, sizeof json, "{\"format\":\"disa-vae-1\",\"embed_dim\":16,\"z_channels\":16,\"ch\":128,"
                 "\"ch_mult\":[1,1,2,2,4],\"num_res_blocks\":2,\"out_ch\":3,\"resolution\":256}");
    else
        mar_config_to_json(&m.cfg, json, sizeof json);
    size_t total = 0;
    rc = st_write_generated(tab, n, seed, json, out, &total);
    if (rc) fprintf(stderr, "disa-mkmodel: %s\n", disa_errmsg());
    else printf("disa-mkmodel: wrote %s: %d tensors, %.1f M parameters\n", out, n, total / 1e6);
    free(tab);
    free(names);
    free(m.enc);
    free(m.dec);
    free(m.head.blocks);
    if (vae) vae_close(&v);
    return rc ? 1 : 0;
}
