// fuzz_safetensors.c: st_parse on arbitrary bytes (src/io/safetensors.c), then every
// accessor a loader uses on what it accepted: st_meta, st_find, st_get_f32 (F16/BF16
// conversion, misaligned F32 copies) and st_bind with a shape that may not match.
#include "fuzz.h"

#include "disa/err.h"
#include "disa/safetensors.h"

#include <string.h>

FUZZ_TARGET(safetensors) {
    st_file f;
    if (st_parse(&f, data, size, "fuzz.safetensors") != 0) return 0;
    (void)st_meta(&f, "config");
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        if (st_find(&f, t->name) != t) __builtin_trap();  // names are unique: find gives this one
        const float *p;
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16) {
            if (st_get_f32(&f, t->name, t->ndim, t->shape, &p) == 0 && t->nbytes) {
                volatile float s = p[0];  // the first and last values are readable
                s += p[t->nbytes / st_dtype_size(t->dtype) - 1];
                (void)s;
            }
        } else {
            (void)st_get_f32(&f, t->name, -1, NULL, &p);  // must refuse with a message
        }
    }
    const float *q = NULL;
    st_bind_entry e = {.name = "weight", .dst = &q, .ndim = 2, .shape = {2, 3}};
    (void)st_bind(&f, &e, 1);
    st_close(&f);
    disa_err_clear();
    return 0;
}
