/* h5io.c -- HDF5 feature files through libhdf5 (see h5io.h).
 *
 * libhdf5 is opened on first use (dlopen), not linked: Debian's pulls in libcurl and,
 * through it, gnutls, krb5, ldap, ssh2 and more, whose loading cost every start of
 * `sola` and `solad` 11.5 ms on this machine (an empty program linked with our other
 * libraries started in 5.6-7.1 ms, with libhdf5 as well in 17.4-19.0) -- also the many
 * runs that never touch an HDF5 file. We compile against its headers and call it
 * through the table below, filled once from the library the build found
 * (SOLA_HDF5_LIB, its SONAME; SOLA_DEBUG_HDF5_LIB names another, for tests). */
#include "h5io.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"

#ifndef SOLA_HDF5_LIB
#define SOLA_HDF5_LIB "libhdf5.so"
#endif

/* The functions of libhdf5 this file calls (each by its own name: the defines below
 * point the names at this table), one list for the table and for the lookup. */
#define H5_FUNCS(X) X(Eset_auto2) X(Fopen) X(Fcreate) X(Fclose) X(Dopen2) X(Dcreate2) \
    X(Dget_space) X(Dget_type) X(Dread) X(Dwrite) X(Dclose) X(Sget_simple_extent_ndims) \
    X(Sget_simple_extent_dims) X(Screate_simple) X(Sselect_hyperslab) X(Sclose) X(Tget_class) \
    X(Tclose) X(Gget_info) X(Lget_name_by_idx) X(Oopen) X(Oclose) X(Iget_type) X(Pcreate) \
    X(Pset_create_intermediate_group) X(Pclose)

/* The functions and global IDs of libhdf5 this file uses. */
#define H5_SLOT(name) __typeof__(&H5##name) name;
static struct {
    __typeof__(&H5open) open;
    hid_t *native_float, *ieee_f32le, *lcpl_class; /* H5T_NATIVE_FLOAT, ... after H5open */
    H5_FUNCS(H5_SLOT)
} h5;
#undef H5_SLOT

/* From here on the names of the API are the table's entries. */
#define H5Eset_auto2 h5.Eset_auto2
#define H5Fopen h5.Fopen
#define H5Fcreate h5.Fcreate
#define H5Fclose h5.Fclose
#define H5Dopen2 h5.Dopen2
#define H5Dcreate2 h5.Dcreate2
#define H5Dget_space h5.Dget_space
#define H5Dget_type h5.Dget_type
#define H5Dread h5.Dread
#define H5Dwrite h5.Dwrite
#define H5Dclose h5.Dclose
#define H5Sget_simple_extent_ndims h5.Sget_simple_extent_ndims
#define H5Sget_simple_extent_dims h5.Sget_simple_extent_dims
#define H5Screate_simple h5.Screate_simple
#define H5Sselect_hyperslab h5.Sselect_hyperslab
#define H5Sclose h5.Sclose
#define H5Tget_class h5.Tget_class
#define H5Tclose h5.Tclose
#define H5Gget_info h5.Gget_info
#define H5Lget_name_by_idx h5.Lget_name_by_idx
#define H5Oopen h5.Oopen
#define H5Oclose h5.Oclose
#define H5Iget_type h5.Iget_type
#define H5Pcreate h5.Pcreate
#define H5Pset_create_intermediate_group h5.Pset_create_intermediate_group
#define H5Pclose h5.Pclose
/* the headers' constants call H5check_version() and H5open() first; h5_load opens the
 * library once instead */
#undef H5CHECK
#define H5CHECK
#undef H5OPEN
#define H5OPEN
#undef H5T_NATIVE_FLOAT
#define H5T_NATIVE_FLOAT (*h5.native_float)
#undef H5T_IEEE_F32LE
#define H5T_IEEE_F32LE (*h5.ieee_f32le)
#undef H5P_LINK_CREATE
#define H5P_LINK_CREATE (*h5.lcpl_class)

/* The serial library keeps global state (open-object tables, error stacks); one lock
 * serialises every use of it from this process. */
static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;
static char h5_why[512]; /* why the library could not be had ("" once loaded) */

/* Opens the library and fills the table (h5_why says why not). */
static void h5_load(void)
{
    const char *name = getenv("SOLA_DEBUG_HDF5_LIB");
    if (!name || !*name)
        name = SOLA_HDF5_LIB;
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(h5_why, sizeof h5_why, "the HDF5 library %s cannot be loaded (%s); install it "
                 "(Debian: libhdf5-103-1)", name, why ? why : "not found");
        return;
    }
    struct {
        void *slot;
        const char *sym;
    } want[] = {
        {&h5.open, "H5open"},
        {&h5.native_float, "H5T_NATIVE_FLOAT_g"},
        {&h5.ieee_f32le, "H5T_IEEE_F32LE_g"},
        {&h5.lcpl_class, "H5P_CLS_LINK_CREATE_ID_g"},
#define H5_WANT(name) {&h5.name, "H5" #name},
        H5_FUNCS(H5_WANT)
#undef H5_WANT
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        void *p = dlsym(lib, want[i].sym);
        if (!p) {
            snprintf(h5_why, sizeof h5_why, "the HDF5 library %s lacks %s (another HDF5 "
                     "version than the one sola was built with?)", name, want[i].sym);
            dlclose(lib);
            memset(&h5, 0, sizeof h5);
            return;
        }
        memcpy(want[i].slot, &p, sizeof p); /* object pointer to function pointer */
    }
    /* the global IDs hold their values once the library is initialised */
    if (h5.open() < 0) {
        snprintf(h5_why, sizeof h5_why, "the HDF5 library %s failed to initialise", name);
        memset(&h5, 0, sizeof h5);
        return;
    }
    /* The default handler prints error stacks to stderr; ours are in sola_err. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    h5_why[0] = 0;
}

/* Takes the lock, the library loaded first: 0, or SOLA_EUNSUP with e saying why
 * (path: the file it was for). */
static int lock_for(const char *path, sola_err *e)
{
    pthread_once(&h5_once, h5_load);
    if (!h5.Fopen)
        return sola_errf(e, SOLA_EUNSUP, "%s: %s", path, h5_why);
    pthread_mutex_lock(&h5_lock);
    return 0;
}

/* Takes the lock where the library is loaded already (a writer exists). */
static void lock(void)
{
    pthread_mutex_lock(&h5_lock);
}

static void unlock(void)
{
    pthread_mutex_unlock(&h5_lock);
}

int sola_h5_is_hdf5(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    return n == 8 && memcmp(b, sig, 8) == 0;
}

static int open_file(const char *path, hid_t *f, sola_err *e)
{
    if (access(path, R_OK) != 0)
        return sola_errf(e, errno == ENOENT ? SOLA_ENOTFOUND : SOLA_EIO, "%s: %s", path,
                         strerror(errno));
    if (!sola_h5_is_hdf5(path))
        return sola_errf(e, SOLA_EFORMAT, "%s: not an HDF5 file (no HDF5 signature)", path);
    *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*f < 0)
        return sola_errf(e, SOLA_EFORMAT, "%s: HDF5 file cannot be opened (corrupt?)", path);
    return 0;
}

/* 1 if the open dataset o is 2-D float; fills dims, or `what` with what it is. */
static int is_feature_ds(hid_t o, hsize_t dims[2], char *what, size_t wn)
{
    hid_t sp = H5Dget_space(o), ty = H5Dget_type(o);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1, ok = 0;
    H5T_class_t cl = ty >= 0 ? H5Tget_class(ty) : H5T_NO_CLASS;
    if (nd != 2)
        snprintf(what, wn, "%d-D dataset", nd);
    else if (cl != H5T_FLOAT)
        snprintf(what, wn, "%s dataset",
                 cl == H5T_INTEGER ? "integer" : cl == H5T_STRING ? "string" : "non-float");
    else
        ok = H5Sget_simple_extent_dims(sp, dims, NULL) == 2;
    if (sp >= 0)
        H5Sclose(sp);
    if (ty >= 0)
        H5Tclose(ty);
    return ok;
}

/* A group is a video when it holds exactly one 2-D float dataset (ActivityNet C3D:
 * /v_NAME/c3d_features); then en->key becomes "name/member". */
static void describe_group(hid_t g, sola_h5_entry *en)
{
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0 || gi.nlinks > 64) {
        snprintf(en->what, sizeof en->what, "group");
        return;
    }
    int found = 0;
    char member[256] = "";
    hsize_t dims[2] = {0, 0}, fd[2] = {0, 0};
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char nm[256];
        ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nm, sizeof nm,
                                         H5P_DEFAULT);
        if (len < 0 || len >= (ssize_t)sizeof nm)
            continue;
        hid_t o = H5Oopen(g, nm, H5P_DEFAULT);
        if (o < 0)
            continue;
        char w[64];
        if (H5Iget_type(o) == H5I_DATASET && is_feature_ds(o, dims, w, sizeof w)) {
            if (!found++) {
                snprintf(member, sizeof member, "%s", nm);
                fd[0] = dims[0];
                fd[1] = dims[1];
            }
        }
        H5Oclose(o);
    }
    if (found != 1) {
        snprintf(en->what, sizeof en->what, found ? "group of %d 2-D float datasets"
                                                  : "group without a 2-D float dataset",
                 found);
        return;
    }
    size_t kl = strlen(en->name) + strlen(member) + 2;
    char *key = malloc(kl);
    if (!key) {
        snprintf(en->what, sizeof en->what, "group (out of memory)");
        return;
    }
    snprintf(key, kl, "%s/%s", en->name, member);
    free(en->key);
    en->key = key;
    en->is_feature = 1;
    en->in_group = 1;
    en->shape[0] = (int64_t)fd[0];
    en->shape[1] = (int64_t)fd[1];
}

/* Describes one root entry: a 2-D float dataset, a group holding one, or what else
 * it is. */
static void describe(hid_t f, sola_h5_entry *en)
{
    hid_t o = H5Oopen(f, en->name, H5P_DEFAULT);
    if (o < 0) {
        snprintf(en->what, sizeof en->what, "unreadable object");
        return;
    }
    H5I_type_t t = H5Iget_type(o);
    hsize_t dims[2] = {0, 0};
    if (t == H5I_GROUP)
        describe_group(o, en);
    else if (t != H5I_DATASET)
        snprintf(en->what, sizeof en->what, "named type");
    else if (is_feature_ds(o, dims, en->what, sizeof en->what)) {
        en->is_feature = 1;
        en->shape[0] = (int64_t)dims[0];
        en->shape[1] = (int64_t)dims[1];
    }
    H5Oclose(o);
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const sola_h5_entry *)a)->name, ((const sola_h5_entry *)b)->name);
}

void sola_h5_list_free(sola_h5_entry *en, int n)
{
    if (!en)
        return;
    for (int i = 0; i < n; i++) {
        free(en[i].name);
        free(en[i].key);
    }
    free(en);
}

int sola_h5_list(const char *path, sola_h5_entry **out, int *n, sola_err *e)
{
    *out = NULL;
    *n = 0;
    int rc = lock_for(path, e);
    if (rc)
        return rc;
    hid_t f;
    rc = open_file(path, &f, e);
    if (rc) {
        unlock();
        return rc;
    }
    sola_h5_entry *en = NULL;
    H5G_info_t gi;
    int cnt = 0;
    if (H5Gget_info(f, &gi) < 0 || gi.nlinks > 10000000) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s: root group cannot be read", path);
        goto out;
    }
    en = calloc(gi.nlinks ? gi.nlinks : 1, sizeof *en);
    if (!en) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory listing %llu entries", path,
                       (unsigned long long)gi.nlinks);
        goto out;
    }
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(f, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0,
                                         H5P_DEFAULT);
        if (len < 0 || len > 4095 || !(en[cnt].name = malloc((size_t)len + 1))) {
            rc = sola_errf(e, len < 0 || len > 4095 ? SOLA_EFORMAT : SOLA_ENOMEM,
                           "%s: cannot read the name of root entry %llu", path,
                           (unsigned long long)i);
            goto out;
        }
        H5Lget_name_by_idx(f, ".", H5_INDEX_NAME, H5_ITER_INC, i, en[cnt].name,
                           (size_t)len + 1, H5P_DEFAULT);
        if (!(en[cnt].key = strdup(en[cnt].name))) {
            rc = sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
            cnt++;
            goto out;
        }
        describe(f, &en[cnt]);
        cnt++;
    }
    qsort(en, (size_t)cnt, sizeof *en, entry_cmp);
out:
    H5Fclose(f);
    unlock();
    if (rc) {
        sola_h5_list_free(en, cnt);
        return rc;
    }
    *out = en;
    *n = cnt;
    return 0;
}

/* Opens a 2-D float dataset and reads its dims. Caller holds the lock. */
static int open_ds(hid_t f, const char *path, const char *name, hid_t *ds, hsize_t dims[2],
                   sola_err *e)
{
    *ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (*ds < 0)
        return sola_errf(e, SOLA_ENOTFOUND, "%s: no dataset '%s'", path, name);
    hid_t sp = H5Dget_space(*ds), ty = H5Dget_type(*ds);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int fl = ty >= 0 && H5Tget_class(ty) == H5T_FLOAT;
    if (nd == 2)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0)
        H5Sclose(sp);
    if (ty >= 0)
        H5Tclose(ty);
    if (nd != 2 || !fl) {
        H5Dclose(*ds);
        return sola_errf(e, SOLA_ESHAPE, "%s[%s]: expected a 2-D float dataset, got %s", path,
                         name, nd != 2 ? "another rank" : "a non-float type");
    }
    return 0;
}

int sola_h5_shape(const char *path, const char *name, int64_t shape[2], sola_err *e)
{
    int rc = lock_for(path, e);
    if (rc)
        return rc;
    hid_t f, ds;
    hsize_t dims[2];
    rc = open_file(path, &f, e);
    if (!rc) {
        if (!(rc = open_ds(f, path, name, &ds, dims, e))) {
            shape[0] = (int64_t)dims[0];
            shape[1] = (int64_t)dims[1];
            H5Dclose(ds);
        }
        H5Fclose(f);
    }
    unlock();
    return rc;
}

int sola_h5_read(const char *path, const char *name, sola_array *out, sola_err *e)
{
    memset(out, 0, sizeof *out);
    int rc = lock_for(path, e);
    if (rc)
        return rc;
    hid_t f, ds;
    hsize_t dims[2];
    rc = open_file(path, &f, e);
    if (rc)
        goto done;
    if ((rc = open_ds(f, path, name, &ds, dims, e)))
        goto close_f;
    size_t n;
    if (sola_mul_size((size_t)dims[0], (size_t)dims[1], &n) ||
        sola_mul_size(n, sizeof(float), &n)) {
        rc = sola_errf(e, SOLA_ETOOBIG, "%s[%s]: shape is too large", path, name);
        goto close_d;
    }
    if (!(out->data = malloc(n ? n : 1))) {
        rc = sola_errf(e, SOLA_ENOMEM, "%s[%s]: out of memory (%zu bytes)", path, name, n);
        goto close_d;
    }
    if (n && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data) < 0) {
        rc = sola_errf(e, SOLA_EFORMAT, "%s[%s]: data cannot be read (truncated or corrupt)",
                       path, name);
        sola_array_free(out);
        goto close_d;
    }
    out->ndim = 2;
    out->shape[0] = (int64_t)dims[0];
    out->shape[1] = (int64_t)dims[1];
close_d:
    H5Dclose(ds);
close_f:
    H5Fclose(f);
done:
    unlock();
    return rc;
}

int sola_h5_read_rows(const char *path, const char *name, int64_t r0, int64_t nr,
                      int64_t cols, float *out, sola_err *e)
{
    int rc = lock_for(path, e);
    if (rc)
        return rc;
    hid_t f, ds, fs = -1, ms = -1;
    hsize_t dims[2];
    rc = open_file(path, &f, e);
    if (rc)
        goto done;
    if ((rc = open_ds(f, path, name, &ds, dims, e)))
        goto close_f;
    if ((int64_t)dims[1] != cols || r0 < 0 || nr < 1 || (hsize_t)(r0 + nr) > dims[0]) {
        rc = sola_errf(e, SOLA_ESHAPE, "%s[%s]: rows [%lld, %lld) x %lld columns do not fit "
                       "its shape [%llu, %llu] (changed since it was opened?)", path, name,
                       (long long)r0, (long long)(r0 + nr), (long long)cols,
                       (unsigned long long)dims[0], (unsigned long long)dims[1]);
        goto close_d;
    }
    hsize_t start[2] = {(hsize_t)r0, 0}, count[2] = {(hsize_t)nr, dims[1]};
    fs = H5Dget_space(ds);
    ms = H5Screate_simple(2, count, NULL);
    if (fs < 0 || ms < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, out) < 0)
        rc = sola_errf(e, SOLA_EFORMAT, "%s[%s]: rows cannot be read (truncated or corrupt)",
                       path, name);
    if (fs >= 0)
        H5Sclose(fs);
    if (ms >= 0)
        H5Sclose(ms);
close_d:
    H5Dclose(ds);
close_f:
    H5Fclose(f);
done:
    unlock();
    return rc;
}

/* ---- writer ------------------------------------------------------------------------ */

struct sola_h5w {
    hid_t f;
    char *path, *tmp;
};

int sola_h5w_open(const char *path, sola_h5w **out, sola_err *e)
{
    *out = NULL;
    sola_h5w *w = calloc(1, sizeof *w);
    size_t n = strlen(path) + 64;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n))) {
        if (w)
            free(w->path);
        free(w);
        return sola_errf(e, SOLA_ENOMEM, "%s: out of memory", path);
    }
    /* ".NAME.tmp.PID" beside the target, as sola_afile does, so the rename is atomic
     * and dataset scanners skip it (hidden). */
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path + 1) : 0;
    snprintf(w->tmp, n, "%.*s.%s.tmp.%ld", dl, path, slash ? slash + 1 : path, (long)getpid());
    int lrc = lock_for(path, e);
    if (lrc) {
        free(w->path);
        free(w->tmp);
        free(w);
        return lrc;
    }
    w->f = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    unlock();
    if (w->f < 0) {
        int rc = sola_errf(e, SOLA_EIO, "%s: cannot create HDF5 file (folder missing or "
                           "not writable?)", w->tmp);
        free(w->path);
        free(w->tmp);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Writes one dataset at `key`; intermediate groups are created (the caller vetted
 * the key). */
static int put(sola_h5w *w, const char *key, const float *data, int64_t rows, int64_t cols,
               sola_err *e)
{
    if (rows < 0 || cols < 1)
        return sola_errf(e, SOLA_EINVAL, "%s[%s]: bad shape [%lld, %lld]", w->path, key,
                         (long long)rows, (long long)cols);
    int rc = 0;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    lock();
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl >= 0)
        H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = sp >= 0 && lcpl >= 0 ? H5Dcreate2(w->f, key, H5T_IEEE_F32LE, sp, lcpl,
                                                 H5P_DEFAULT, H5P_DEFAULT)
                                    : -1;
    if (ds < 0)
        rc = sola_errf(e, SOLA_EINVAL, "%s: cannot create dataset '%s' (duplicate name?)",
                       w->path, key);
    else if (rows && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = sola_errf(e, SOLA_EIO, "%s[%s]: write failed (disk full?)", w->path, key);
    if (ds >= 0)
        H5Dclose(ds);
    if (sp >= 0)
        H5Sclose(sp);
    if (lcpl >= 0)
        H5Pclose(lcpl);
    unlock();
    return rc;
}

int sola_h5w_put(sola_h5w *w, const char *name, const float *data, int64_t rows,
                 int64_t cols, sola_err *e)
{
    if (!name[0] || name[0] == '.' || strchr(name, '/'))
        return sola_errf(e, SOLA_EINVAL, "%s: '%s' cannot be a dataset name", w->path, name);
    return put(w, name, data, rows, cols, e);
}

int sola_h5w_put_key(sola_h5w *w, const char *key, const float *data, int64_t rows,
                     int64_t cols, sola_err *e)
{
    const char *sl = strchr(key, '/');
    if (!key[0] || key[0] == '.' || key[0] == '/' || (sl && (!sl[1] || sl[1] == '.' ||
                                                             strchr(sl + 1, '/'))))
        return sola_errf(e, SOLA_EINVAL, "%s: '%s' cannot be a dataset path (NAME or "
                         "GROUP/NAME)", w->path, key);
    return put(w, key, data, rows, cols, e);
}

static void h5w_free(sola_h5w *w)
{
    free(w->path);
    free(w->tmp);
    free(w);
}

int sola_h5w_commit(sola_h5w *w, sola_err *e)
{
    lock();
    herr_t hr = H5Fclose(w->f);
    unlock();
    int rc = 0;
    int fd = hr < 0 ? -1 : open(w->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        rc = sola_errf(e, SOLA_EIO, "%s: cannot finish the HDF5 file (disk full?)", w->path);
    } else if (rename(w->tmp, w->path) != 0) {
        rc = sola_errf(e, SOLA_EIO, "%s: rename failed: %s", w->path, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
    if (rc) {
        unlink(w->tmp);
    } else {
        char dir[4096];
        const char *slash = strrchr(w->path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - w->path) : 1,
                 slash ? w->path : ".");
        sola_fsync_dir(dir[0] ? dir : "/");
    }
    h5w_free(w);
    return rc;
}

void sola_h5w_abort(sola_h5w *w)
{
    if (!w)
        return;
    lock();
    H5Fclose(w->f);
    unlock();
    unlink(w->tmp);
    h5w_free(w);
}
