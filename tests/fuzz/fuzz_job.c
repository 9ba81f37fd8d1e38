// fuzz_job.c: the job-spec parser (src/run/job.c) on a temporary file holding the bytes:
// job_load (JSON, fields, variants, overrides, and the model file the spec names, which
// it opens to check labels against class_num), then what disa-gen derives from every
// accepted job: its identity string, labels and work units. Run from the repository
// root: the seeds name models/tiny-test.safetensors.
#include "fuzz.h"

#include "disa/err.h"
#include "disa/job.h"

FUZZ_TARGET(job) {
    const char *path = fuzz_tmpfile("job", ".json", data, size);
    if (!path) return 0;
    job_list l = {0};
    static const job_override ov[] = {{"num_iter", "3"}};
    // Half the inputs (by their first byte) also get a command-line override.
    if (job_load(&l, path, ov, size && (data[0] & 1) ? 1 : 0) == 0) {
        for (int i = 0; i < l.n; i++) {
            const job *j = &l.jobs[i];
            char buf[4096];
            (void)job_identity(j, "m", "v", buf, (int)sizeof buf);
            int units = job_units(j);
            for (int u = 0; u < units && u < 64; u++) {
                int first = job_unit_first(j, u), n = job_unit_count(j, u);
                if (first < 0 || n < 1 || first + n > j->num_images) __builtin_trap();
                (void)job_label(j, first, 1);  // the model's class count divides num_images; 1 always does
            }
        }
        job_list_free(&l);
    }
    disa_err_clear();
    return 0;
}
