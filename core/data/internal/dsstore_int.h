/* dsstore_int.h -- helpers shared by dsstore.c and dsstore_npz.c. Not for others. */
#ifndef SOLA_DSSTORE_INT_H
#define SOLA_DSSTORE_INT_H

#include "err.h"

#define CHUNK (256 * 1024) /* the fixed buffer uploads are copied through */
#define PATHN 4096

/* snprintf into a PATHN buffer. Roots are checked to be short (check_names) and names
 * are at most 64 bytes, so paths fit; a function keeps -Wformat-truncation quiet. */
void sola_ds__pf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* root short enough, ds (and item if not NULL) valid names; else SOLA_EINVAL. When
 * dir is not NULL it gets the dataset's folder ROOT/DS (PATHN bytes). */
int sola_ds__check_names(const char *root, const char *ds, const char *item, char *dir,
                         sola_err *e);
/* flock on ROOT/.lock (creating ROOT): the fd to close, or a negative SOLA_E* code. */
int sola_ds__store_lock(const char *root, sola_err *e);
/* Rewrites a message about a hidden path so that it names what the user sent. */
void sola_ds__rename_in_msg(sola_err *e, const char *hidden, const char *shown);

#endif
