// flags.h: the command-line conventions the programs share, and the parsers of flag
// values that job files and sampling settings use too.
//
//   --name value    --name=value (programs that take it)    positional arguments
//
// Messages name the flag with its dashes and say what is accepted; the program prefixes
// its name. Every program follows the same rules, each kept in one place: how a flag's
// value is taken (flag_value: a next argument starting with "--" is a forgotten value,
// refused, unless given as --name=--value), what counts as a request for help
// (flag_is_help: the usage goes to stdout and the program exits 0), and exit status 2
// with one message for every usage or input error (an unknown flag is named as unknown,
// before its value is looked for).
#ifndef DISA_FLAGS_H
#define DISA_FLAGS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// arg as a flag: 1, its name without the dashes (at most n-1 characters) into name and,
// for "--name=value" when split_eq is set, *value = the text after '=' (else NULL).
// 0 when arg does not start with "--" (a positional argument).
int flag_split(const char *arg, int split_eq, char *name, size_t n, const char **value);
// The value of flag `name` at argv[*i]: *value if "--name=value" gave one, else the next
// argument (*i advances). DISA_EINVAL "--NAME needs a value" when there is none or the
// next argument starts with "--".
int flag_value(int argc, char **argv, int *i, const char *name, const char **value);
// "-h" or "--help".
int flag_is_help(const char *arg);
// What a program's parse function returns when help was asked for: the usage is
// printed on stdout and the program exits 0.
enum { FLAG_HELP = -1 };
// A program's usage text onto f; the exit status that goes with it: 0 on stdout (help
// was asked for), 2 on stderr (a usage error).
int flag_usage(FILE *f, const char *text);
// 1 when name is one of names (NULL-ended), else 0.
int flag_in(const char *name, const char *const *names);

// An integer in lo..hi: DISA_EINVAL "--NAME must be an integer in LO..HI, got 'V'".
int flag_int(const char *name, const char *v, long long lo, long long hi, long long *out);
// flag_int into an int.
int flag_int32(const char *name, const char *v, int lo, int hi, int *out);
// A non-negative 64-bit integer: DISA_EINVAL "--NAME must be a non-negative integer, got 'V'".
int flag_u64(const char *name, const char *v, uint64_t *out);
// A number in [lo, hi]: DISA_EINVAL "--NAME must be a number in [LO, HI], got 'V'".
int flag_num(const char *name, const char *v, double lo, double hi, double *out);

// An enum's names (its _name() and _parse(), STYLE): names[k] names value k of n.
// names[k], or "?" for k outside 0..n-1.
const char *flag_enum_name(const char *const *names, int n, int k);
// How flag_enum_parse compares: exactly; ignoring ASCII case; and, with FLAG_DASH, taking
// '_' in the text for '-' in a name ("two_stage" for "two-stage").
enum { FLAG_EXACT = 0, FLAG_ICASE = 1, FLAG_DASH = 2 };
// The value that s names into *out. DISA_EINVAL "unknown WHAT 'S' (expected A, B or C)"
// when none does (s may be NULL, shown as "(null)").
int flag_enum_parse(int *out, const char *s, const char *const *names, int n, int match, const char *what);

#endif
