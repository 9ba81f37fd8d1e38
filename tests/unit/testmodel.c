// testmodel.c: see testmodel.h.
#include "testmodel.h"

#include "disa/mar.h"
#include "disa/safetensors.h"

#include <stdlib.h>
#include <string.h>

int testmodel_write(const char *path, const char *json, uint64_t seed) {
    mar_model m;
    memset(&m, 0, sizeof m);
    if (mar_config_parse(&m.cfg, json, "test") != 0) return -1;
    st_bind_entry *tab;
    char *names;
    int n;
    if (mar_tensor_table(&m, &tab, &names, &n) != 0) return -1;
    char cfg[1024];
    int rc = st_write_generated(tab, n, seed, mar_config_to_json(&m.cfg, cfg, sizeof cfg), path, NULL);
    free(tab);
    free(names);
    free(m.enc);
    free(m.dec);
    free(m.head.blocks);
    return rc ? -1 : 0;
}
