// fuzz_npy.c: the NumPy readers (src/io/npy.c, src/io/npz.c). The bytes are parsed as a
// .npy image by npy_parse, and written to a temporary .npz file for npz_read (libzip,
// then npy_parse of the member) with the names the programs ask for.
#include "fuzz.h"

#include "disa/err.h"
#include "disa/image.h"
#include "disa/npy.h"

FUZZ_TARGET(npy) {
    npy_array a;
    if (npy_parse(&a, data, size, "fuzz.npy") == 0) {
        if (a.nbytes) {
            volatile uint8_t s = ((const uint8_t *)a.data)[a.nbytes - 1];
            (void)s;
        }
        npy_free(&a);
    }
    const char *path = fuzz_tmpfile("npz", ".npz", data, size);
    static const char *names[] = {"mu", "sigma", "arr_0"};
    for (int i = 0; path && i < 3; i++)
        if (npz_read(&a, path, names[i]) == 0) npy_free(&a);
    disa_err_clear();
    return 0;
}
