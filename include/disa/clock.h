// clock.h: the one clock the timings read.
#ifndef DISA_CLOCK_H
#define DISA_CLOCK_H

// Seconds on CLOCK_MONOTONIC (never steps back when the wall clock is set); only
// differences mean something.
double clock_now(void);

#endif
