// ledger.h: the resume ledger of one output folder.
//
// <dir>/manifest is append-only, one line "unit U first F count C" per finished unit,
// each line written with one write() and fsync'd before the unit counts as done, so a
// crash loses at most the units in flight. A torn last line (crash mid-write) is
// ignored and cut off when the ledger is reopened. <dir>/run.json records what
// determines the images; a different configuration in the same folder is refused.
#ifndef DISA_LEDGER_H
#define DISA_LEDGER_H

typedef struct ledger {
    int fd;
    char path[1100];
    unsigned char *done;  // [n_units]
    int n_units, n_done;
} ledger;

// Open (creating) <dir>/manifest, read the finished units. Lines naming units outside
// 0..n_units-1 or with other bounds than expected are a format error (another run).
int ledger_open(ledger *l, const char *dir, int n_units);
// Record unit u as finished: append, fsync. Idempotent per unit.
int ledger_append(ledger *l, int unit, int first, int count);
// Forget unit u (its files failed verification): it will be recomputed; the manifest
// keeps the old line, which a later append supersedes.
void ledger_forget(ledger *l, int unit);
void ledger_close(ledger *l);

// 16 hex digits of a 64-bit digest of the whole file (fast, not cryptographic).
int file_digest(const char *path, char out[17]);

// run.json: write <dir>/run.json atomically from an identity text ("key=value\n" lines)
// and extra JSON fields (an object's members without braces, may be "").
int runinfo_write(const char *dir, const char *identity, const char *extra_json);
// Compare the identity stored in <dir>/run.json with `identity`. Returns 0 when equal or
// when no run.json exists (*exists = 0); DISA_EINVAL listing the differing keys
// ("cfg: 2.9 in the folder, 3 now") otherwise.
int runinfo_check(const char *dir, const char *identity, int *exists);

#endif
