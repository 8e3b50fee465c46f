/* numparse.h -- strict number parsing for command lines (sola's and solad's options):
 * the whole string must be the number, no trailing text, no silent clamping. */
#ifndef SOLA_NUMPARSE_H
#define SOLA_NUMPARSE_H

/* A base-10 integer in [lo, hi]: 0 and *out set, or -1 (NULL, empty, trailing
 * characters, overflow, out of range; *out untouched). */
int sola_parse_long(const char *s, long lo, long hi, long *out);

#endif
