// ledger.h: the resume ledger of one output folder.
//
// <dir>/manifest is append-only, one line "unit U first F count C sig S" per finished
// unit, each line written with one write() and fsync'd (alone or with others) before the unit counts as done, so
// a crash loses at most the units in flight. S is the index of the machine signature of
// the rank that made the unit in run.json's table (provenance.h); lines written before
// signatures were recorded end after the count and still read (their unit's sig is -1).
// A torn last line (crash mid-write) is ignored and cut off when the ledger is reopened.
#ifndef DISA_LEDGER_H
#define DISA_LEDGER_H

typedef struct ledger {
    int fd;               // -1 for a ledger only read (ledger_read)
    char path[1100];
    unsigned char *done;  // [n_units]
    int *sig;             // [n_units] signature index of the line that recorded each unit, -1 unknown
    int n_units, n_done;
    int *pending;         // [n_units] units written but not yet fsync'd (ledger_write)
    int n_pending;
} ledger;

// Open (creating) <dir>/manifest, read the finished units. Lines naming units outside
// 0..n_units-1 or with other bounds than expected are a format error (another run).
int ledger_open(ledger *l, const char *dir, int n_units);
// Read <dir>/manifest as ledger_open does, but write nothing: no file is created, a torn
// last line stays. A missing manifest reads as no unit done. Close with ledger_close.
int ledger_read(ledger *l, const char *dir, int n_units);
// Record unit u as finished by a rank of signature sig (-1: unknown, the line then has no
// sig): append, fsync. Idempotent per unit.
int ledger_append(ledger *l, int unit, int first, int count, int sig);
// The same in two steps, so that one fsync covers many lines: ledger_write appends the
// line (the unit is pending: not done yet), ledger_sync fsyncs and marks every pending
// unit done. A crash between them loses only the pending units, which the next run
// computes again (their files are replaced whole).
int ledger_write(ledger *l, int unit, int first, int count, int sig);
int ledger_sync(ledger *l);
// Forget unit u (its files failed verification): it will be recomputed; the manifest
// keeps the old line, which a later append supersedes.
void ledger_forget(ledger *l, int unit);
void ledger_close(ledger *l);

#endif
