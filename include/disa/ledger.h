// ledger.h: the resume ledger of one output folder.
//
// <dir>/manifest is append-only, one line "unit U first F count C" per finished unit,
// each line written with one write() and fsync'd (alone or with others) before the unit
// counts as done, so a crash loses at most the units in flight. A torn last line (crash mid-write) is
// ignored and cut off when the ledger is reopened.
#ifndef DISA_LEDGER_H
#define DISA_LEDGER_H

typedef struct ledger {
    int fd;
    char path[1100];
    unsigned char *done;  // [n_units]
    int n_units, n_done;
    int *pending;         // [n_units] units written but not yet fsync'd (ledger_write)
    int n_pending;
} ledger;

// Open (creating) <dir>/manifest, read the finished units. Lines naming units outside
// 0..n_units-1 or with other bounds than expected are a format error (another run).
int ledger_open(ledger *l, const char *dir, int n_units);
// Record unit u as finished: append, fsync. Idempotent per unit.
int ledger_append(ledger *l, int unit, int first, int count);
// The same in two steps, so that one fsync covers many lines: ledger_write appends the
// line (the unit is pending: not done yet), ledger_sync fsyncs and marks every pending
// unit done. A crash between them loses only the pending units, which the next run
// computes again (their files are replaced whole).
int ledger_write(ledger *l, int unit, int first, int count);
int ledger_sync(ledger *l);
// Forget unit u (its files failed verification): it will be recomputed; the manifest
// keeps the old line, which a later append supersedes.
void ledger_forget(ledger *l, int unit);
void ledger_close(ledger *l);

#endif
