// err.h: status codes and the per-thread error message.
//
// Every fallible library call returns 0 or a negative DISA_E* code and, on failure,
// leaves a message naming the object at fault (file, tensor, field, value) that
// disa_errmsg() returns. The library never exits; only programs in src/cli do.
#ifndef DISA_ERR_H
#define DISA_ERR_H

enum {
    DISA_OK = 0,
    DISA_EINVAL = -1,   // bad argument or value (flag, job field, config)
    DISA_EIO = -2,      // open/read/write/rename failed
    DISA_ENOMEM = -3,   // malloc or arena exhausted
    DISA_EFORMAT = -4,  // malformed file contents
    DISA_ESHAPE = -5,   // tensor shape mismatch
    DISA_ENOTFOUND = -6,// missing tensor, key or file
    DISA_ERANGE = -7,   // value out of range
    DISA_EMPI = -8,     // MPI call failed
    DISA_EINTERNAL = -9,// invariant broken: a bug
    DISA_ECANCELED = -10// stopped on request (signal, scheduler)
};

// Record a message for `code` and return `code`, so a failing call reads
//   return disa_err(DISA_EINVAL, "%s: 'lower' must be >= 1, got %d", path, v);
int disa_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Prefix the current message with more context ("loading x.safetensors: " + old).
int disa_err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// The last message recorded on this thread ("" if none). Valid until the next disa_err.
const char *disa_errmsg(void);

// Short name of a code ("invalid argument", "I/O error", ...).
const char *disa_strerror(int code);

// Clear the message of this thread.
void disa_err_clear(void);

// A program's exit status for a library result: 0 for DISA_OK; 2 for what the user can
// fix in what they gave (a flag, a job field, a model or data file that is missing,
// damaged or of the wrong kind: EINVAL, EFORMAT, ESHAPE, ENOTFOUND, ERANGE); 1 for a
// failure of the run itself (I/O errors while writing, memory, MPI, a bug).
int disa_exit_status(int code);

#endif
