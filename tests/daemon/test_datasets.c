/* test_datasets.c -- the dataset store (core/data/dsstore.h) and its routes against a real
 * solad: uploads item by item and as .npz (a `sola synth` dataset), what GET reports,
 * malformed, truncated and wrong-dimension uploads refused with nothing left behind,
 * traversal and hidden names refused, a client that disconnects mid-upload leaves
 * nothing, a full disk gives 507 and a consistent store (as root: a small tmpfs), and
 * the bearer token on every mutating route. */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "array.h"
#include "dsstore.h"
#include "npy.h"
#include "npz.h"
#include "serverutil.h"

/* snprintf into a 4096-byte path buffer (a function keeps -Wformat-truncation quiet
 * about paths that cannot be that long). */
__attribute__((format(printf, 2, 3))) static void pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, 4096, fmt, ap);
    va_end(ap);
}

/* Files in dir whose names start with prefix ("" = all but . and ..). */
static int count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            !strncmp(de->d_name, prefix, strlen(prefix)))
            n++;
    closedir(d);
    return n;
}

/* Every hidden leftover of the store's writes, anywhere under root. */
static int leftovers(const char *root)
{
    int n = count_prefix(root, ".staging.") + count_prefix(root, ".trash.");
    DIR *d = opendir(root);
    if (!d)
        return n;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[4096];
        pathf(p, "%s/%s", root, de->d_name);
        n += count_prefix(p, ".up.");
    }
    closedir(d);
    return n;
}

static void write_npy(const char *path, int T, int C, unsigned seed)
{
    float *x = su_input(T, C, seed);
    int64_t sh[2] = {T, C};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(path, x, 2, sh, &e), 0);
    free(x);
}

static void write_npz(const char *path, int n, const int *T, int C, int deflate)
{
    sola_array a[8];
    char names[8][16];
    const char *np[8];
    for (int i = 0; i < n; i++) {
        a[i] = (sola_array){0};
        a[i].data = su_input(T[i], C, 100 + (unsigned)i);
        a[i].ndim = 2;
        a[i].shape[0] = T[i];
        a[i].shape[1] = C;
        snprintf(names[i], sizeof names[i], "v%d", i);
        np[i] = names[i];
    }
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_save(path, np, a, n, deflate, &e), 0);
    for (int i = 0; i < n; i++)
        free(a[i].data);
}

/* ---- the store itself ---------------------------------------------------------- */

/* fsync and syncfs, interposed while sync_lock_path is set: each call counted, and
 * whether the store's lock was held at the time (a second open of the lock file cannot
 * take it without waiting). */
static const char *sync_lock_path;
static int n_syncs, n_syncs_locked;

static void sync_probe(void)
{
    if (!sync_lock_path)
        return;
    n_syncs++;
    int fd = open(sync_lock_path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        n_syncs_locked++;
    else
        flock(fd, LOCK_UN);
    close(fd);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    sync_probe();
    return real(fd);
}

int syncfs(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    sync_probe();
    return real(fd);
}

/* The Low list of issue 18: a 5,000-member .npz held the store's lock for 14-17 s, one
 * fsync per member. Now its members are extracted outside the lock and flushed once;
 * the lock is taken for the swap. A staging directory in progress is protected by its
 * own flock from another replica's recovery. */
START_TEST(store_npz_syncs_once_outside_the_lock)
{
    enum { N = 300 };
    char *dir = tu_tmpdir();
    char root[4096], z[4096], lock[4096];
    pathf(root, "%s/datasets", dir);
    pathf(z, "%s/many.npz", dir);
    pathf(lock, "%s/.lock", root);
    ck_assert_int_eq(mkdir(root, 0755), 0);
    ck_assert_int_eq(tu_write(lock, "", 0), 0);
    static sola_array a[N];
    static char names[N][16];
    const char *np[N];
    for (int i = 0; i < N; i++) {
        a[i] = (sola_array){0};
        a[i].data = su_input(3, 4, 1 + (unsigned)i);
        a[i].ndim = 2;
        a[i].shape[0] = 3;
        a[i].shape[1] = 4;
        snprintf(names[i], sizeof names[i], "m%d", i);
        np[i] = names[i];
    }
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_save(z, np, a, N, 0, &e), 0);
    for (int i = 0; i < N; i++)
        free(a[i].data);
    int created = -1, n = 0;
    n_syncs = n_syncs_locked = 0;
    sync_lock_path = lock;
    int rc = sola_ds_put_npz(root, "many", z, 0, &created, &n, &e);
    sync_lock_path = NULL;
    ck_assert_msg(rc == 0, "%s", e.msg);
    ck_assert_int_eq(n, N);
    fprintf(stderr, "npz of %d members: %d fsync/syncfs calls, %d of them under the store "
                    "lock\n", N, n_syncs, n_syncs_locked);
    ck_assert_int_le(n_syncs, 4);        /* before: one per member */
    ck_assert_int_le(n_syncs_locked, 2); /* before: every one of them */
    sola_ds_info info;
    ck_assert_int_eq(sola_ds_stat(root, "many", &info, &e), 0);
    ck_assert_int_eq(info.n, N);
    sola_ds_info_free(&info);

    /* recovery leaves a staging directory whose writer holds it, removes a dead one */
    char st[4096];
    pathf(st, "%s/.staging.x.abc123", root);
    ck_assert_int_eq(mkdir(st, 0755), 0);
    int sfd = open(st, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(sfd, 0);
    ck_assert_int_eq(flock(sfd, LOCK_EX), 0);
    sola_ds_recover(root);
    ck_assert_int_eq(access(st, F_OK), 0);
    close(sfd);
    sola_ds_recover(root);
    ck_assert_int_ne(access(st, F_OK), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(store_items_validated_before_they_appear)
{
    char *dir = tu_tmpdir();
    char root[4096], f[4096], bad[4096];
    pathf(root, "%s/datasets", dir);
    pathf(f, "%s/in.npy", dir);
    sola_err e = {0};
    int created = -1, C = 0;
    int64_t T = 0;
    write_npy(f, 30, 8, 1);
    ck_assert_int_eq(sola_ds_put_item(root, "d", "a", f, 0, &created, &T, &C, &e), 0);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(T, 30);
    ck_assert_int_eq(C, 8);
    ck_assert_int_eq(sola_ds_put_item(root, "d", "a", f, 0, &created, NULL, NULL, &e), 0);
    ck_assert_int_eq(created, 0); /* replaced */

    /* another C: refused, and the message says which dataset has which C */
    pathf(bad, "%s/c16.npy", dir);
    write_npy(bad, 30, 16, 2);
    ck_assert_int_eq(sola_ds_put_item(root, "d", "b", bad, 0, &created, NULL, NULL, &e),
                     SOLA_ESHAPE);
    ck_assert_ptr_nonnull(strstr(e.msg, "C=16"));
    ck_assert_ptr_nonnull(strstr(e.msg, "C=8"));

    /* truncated: the header promises more data than follows */
    size_t n;
    char *buf = tu_read(f, &n);
    pathf(bad, "%s/trunc.npy", dir);
    ck_assert_int_eq(tu_write(bad, buf, n - 100), 0);
    ck_assert_int_eq(sola_ds_put_item(root, "d", "c", bad, 0, &created, NULL, NULL, &e),
                     SOLA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "dataset d, item c")); /* not the hidden path */
    ck_assert_ptr_null(strstr(e.msg, ".up."));
    /* garbage into a new dataset: the dataset is not created */
    ck_assert_int_eq(tu_write(bad, "not a npy file at all", 21), 0);
    ck_assert_int_eq(sola_ds_put_item(root, "new", "x", bad, 0, &created, NULL, NULL, &e),
                     SOLA_EFORMAT);
    free(buf);

    sola_ds_info info;
    ck_assert_int_eq(sola_ds_stat(root, "d", &info, &e), 0);
    ck_assert_int_eq(info.n, 1);
    ck_assert_str_eq(info.items[0].name, "a");
    sola_ds_info_free(&info);
    ck_assert_int_eq(sola_ds_stat(root, "new", &info, &e), SOLA_ENOTFOUND);
    ck_assert_int_eq(leftovers(root), 0);

    /* names: no traversal, no hidden files, no separators */
    const char *names[] = {"..", "../x", ".hidden", "a/b", "", "-rf", "x\\y", "a b", NULL};
    for (int i = 0; names[i]; i++) {
        ck_assert_int_eq(sola_ds_put_item(root, names[i], "a", f, 0, &created, NULL, NULL, &e),
                         SOLA_EINVAL);
        ck_assert_int_eq(sola_ds_put_item(root, "d", names[i], f, 0, &created, NULL, NULL, &e),
                         SOLA_EINVAL);
    }
    ck_assert_int_eq(count_prefix(dir, ""), 4); /* datasets, in, c16, trunc: nothing else */

    /* delete the last item: the dataset goes with it */
    ck_assert_int_eq(sola_ds_delete(root, "d", "zz", &e), SOLA_ENOTFOUND);
    ck_assert_int_eq(sola_ds_delete(root, "d", "a", &e), 0);
    ck_assert_int_eq(sola_ds_stat(root, "d", &info, &e), SOLA_ENOTFOUND);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(store_npz_replaces_a_dataset_whole_or_not_at_all)
{
    char *dir = tu_tmpdir();
    char root[4096], z1[4096], z2[4096], z3[4096];
    pathf(root, "%s/datasets", dir);
    pathf(z1, "%s/a.npz", dir);
    pathf(z2, "%s/b.npz", dir);
    pathf(z3, "%s/c.npz", dir);
    sola_err e = {0};
    int created = -1, n = 0;
    const int T1[3] = {30, 40, 50}, T2[2] = {25, 26};
    write_npz(z1, 3, T1, 8, 0); /* stored */
    write_npz(z2, 2, T2, 8, 1); /* deflated */
    ck_assert_int_eq(sola_ds_put_npz(root, "d", z1, 0, &created, &n, &e), 0);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(n, 3);
    sola_ds_info info;
    ck_assert_int_eq(sola_ds_stat(root, "d", &info, &e), 0);
    ck_assert_int_eq(info.n, 3);
    ck_assert_int_eq(info.frames, 120);
    ck_assert_int_eq(info.C, 8);
    sola_ds_info_free(&info);

    /* the extracted items read back as the members */
    char p[4096];
    pathf(p, "%s/d/v1.npy", root);
    sola_array a = {0};
    ck_assert_int_eq(sola_npy_load(p, 0, &a, &e), 0);
    float *want = su_input(40, 8, 101);
    ck_assert_mem_eq(a.data, want, sizeof(float) * 40 * 8);
    free(want);
    sola_array_free(&a);

    /* a deflated archive replaces the dataset: exactly its members remain */
    ck_assert_int_eq(sola_ds_put_npz(root, "d", z2, 0, &created, &n, &e), 0);
    ck_assert_int_eq(created, 0);
    ck_assert_int_eq(sola_ds_stat(root, "d", &info, &e), 0);
    ck_assert_int_eq(info.n, 2);
    ck_assert_int_eq(info.frames, 51);
    sola_ds_info_free(&info);

    /* mixed C, a corrupt member, a truncated archive: refused, dataset unchanged */
    sola_array m[2] = {{0}, {0}};
    const char *mn[2] = {"x", "y"};
    for (int i = 0; i < 2; i++) {
        m[i].ndim = 2;
        m[i].shape[0] = 30;
        m[i].shape[1] = 8 + 8 * i;
        m[i].data = su_input(30, 8 + 8 * i, 7);
    }
    ck_assert_int_eq(sola_npz_save(z3, mn, m, 2, 0, &e), 0);
    free(m[0].data);
    free(m[1].data);
    ck_assert_int_eq(sola_ds_put_npz(root, "d", z3, 0, &created, &n, &e), SOLA_ESHAPE);
    size_t len;
    unsigned char *buf = tu_read(z1, &len);
    buf[200] ^= 0x5a; /* inside the first member's float data */
    ck_assert_int_eq(tu_write(z3, buf, len), 0);
    ck_assert_int_eq(sola_ds_put_npz(root, "d", z3, 0, &created, &n, &e), SOLA_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "CRC"));
    buf[200] ^= 0x5a;
    ck_assert_int_eq(tu_write(z3, buf, len / 2), 0);
    ck_assert_int_eq(sola_ds_put_npz(root, "d", z3, 0, &created, &n, &e), SOLA_EFORMAT);
    free(buf);
    /* a member whose name would escape the dataset */
    sola_array one = {0};
    one.ndim = 2;
    one.shape[0] = 30;
    one.shape[1] = 8;
    one.data = su_input(30, 8, 9);
    const char *evil[1] = {"../../evil"};
    ck_assert_int_eq(sola_npz_save(z3, evil, &one, 1, 0, &e), 0);
    free(one.data);
    ck_assert_int_eq(sola_ds_put_npz(root, "d", z3, 0, &created, &n, &e), SOLA_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.msg, "../../evil"));
    ck_assert_int_eq(count_prefix(dir, "evil"), 0);

    ck_assert_int_eq(sola_ds_stat(root, "d", &info, &e), 0);
    ck_assert_int_eq(info.n, 2);
    ck_assert_int_eq(info.frames, 51);
    sola_ds_info_free(&info);
    ck_assert_int_eq(leftovers(root), 0);

    /* what a crash leaves (hidden files) is ignored by readers and removed by recover */
    pathf(p, "%s/.staging.d.XXXX", root);
    mkdir(p, 0755);
    pathf(p, "%s/d/.up.v9.1.npy", root);
    ck_assert_int_eq(tu_write(p, "x", 1), 0);
    ck_assert_int_eq(sola_ds_stat(root, "d", &info, &e), 0);
    ck_assert_int_eq(info.n, 2);
    sola_ds_info_free(&info);
    ck_assert_int_eq(sola_ds_recover(root), 2);
    ck_assert_int_eq(leftovers(root), 0);

    /* a snapshot keeps the items when the dataset goes */
    pathf(p, "%s/snap", dir);
    ck_assert_int_eq(sola_ds_snapshot(root, "d", p, &e), 0);
    ck_assert_int_eq(sola_ds_delete(root, "d", NULL, &e), 0);
    ck_assert_int_eq(count_prefix(p, "v"), 2);
    sola_ds_info *list;
    int nl;
    ck_assert_int_eq(sola_ds_list(root, &list, &nl, &e), 0);
    ck_assert_int_eq(nl, 0);
    free(list);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- over HTTP ----------------------------------------------------------------- */

static long put_file(const su_server *s, const char *path, const char *file, const char *ctype,
                     const char *auth, su_resp *r)
{
    size_t n;
    void *b = tu_read(file, &n);
    ck_assert_ptr_nonnull(b);
    char ct[128];
    snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
    const char *h[] = {ct, auth, NULL};
    su_http(NULL, "PUT", su_url(s, path), h, b, n, r);
    free(b);
    return r->status;
}

static json_t *get_json(const su_server *s, const char *path, long want)
{
    su_resp r;
    su_get(s, NULL, path, &r);
    ck_assert_msg(r.status == want, "GET %s: %ld %s", path, r.status, r.body ? r.body : "");
    json_t *o = json_loads(r.body ? r.body : "", 0, NULL);
    su_resp_free(&r);
    return o;
}

START_TEST(http_synth_dataset_item_by_item_and_as_npz)
{
    char *dir = tu_tmpdir();
    char data[4096], syn[4096];
    pathf(data, "%s/data", dir);
    pathf(syn, "%s/syn", dir);
    ck_assert_int_eq(tu_system("'%s/sola' synth -o '%s' --videos 5 --dim 16 --length 40 "
                               ">/dev/null 2>&1", tu_bin(), syn), 0);
    const char *args[] = {"--data", data, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    su_resp r;

    /* item by item, as `curl -T file` sends them */
    int64_t frames = 0;
    sola_array arrs[5];
    const char *names[5] = {"video_0000", "video_0001", "video_0002", "video_0003",
                            "video_0004"};
    for (int i = 0; i < 5; i++) {
        char f[4096], path[256];
        pathf(f, "%s/features/%s.npy", syn, names[i]);
        snprintf(path, sizeof path, "/datasets/syn/items/%s", names[i]);
        sola_err e = {0};
        arrs[i] = (sola_array){0};
        ck_assert_int_eq(sola_npy_load(f, 0, &arrs[i], &e), 0);
        frames += arrs[i].shape[0];
        ck_assert_int_eq(put_file(&s, path, f, "application/octet-stream", NULL, &r), 201);
        char h[128];
        ck_assert_str_eq(su_header(&r, "Location", h, sizeof h), "/datasets/syn");
        su_resp_free(&r);
    }
    json_t *o = get_json(&s, "/datasets/syn", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "n_items")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "frames")), frames);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "dim")), 16);
    ck_assert_int_gt(json_integer_value(json_object_get(o, "bytes")), frames * 16 * 4);
    ck_assert_int_eq(json_array_size(json_object_get(o, "items")), 5);
    json_decref(o);

    /* the same videos as one .npz (deflated), under another name */
    char z[4096];
    pathf(z, "%s/syn.npz", dir);
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_save(z, names, arrs, 5, 1, &e), 0);
    ck_assert_int_eq(put_file(&s, "/datasets/syn2", z, "application/x-npz", NULL, &r), 201);
    su_resp_free(&r);
    o = get_json(&s, "/datasets/syn2", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "frames")), frames);
    json_decref(o);
    /* PUT again replaces it (200), keeping only the archive's members */
    ck_assert_int_eq(sola_npz_save(z, names, arrs, 2, 0, &e), 0);
    ck_assert_int_eq(put_file(&s, "/datasets/syn2", z, "application/zip", NULL, &r), 200);
    su_resp_free(&r);
    o = get_json(&s, "/datasets/syn2", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "n_items")), 2);
    json_decref(o);
    for (int i = 0; i < 5; i++)
        sola_array_free(&arrs[i]);

    o = get_json(&s, "/datasets", 200);
    json_t *list = json_object_get(o, "datasets");
    ck_assert_int_eq(json_array_size(list), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "name")), "syn");
    json_decref(o);

    /* deleting an item, then the dataset */
    su_http(NULL, "DELETE", su_url(&s, "/datasets/syn/items/video_0000"), NULL, NULL, 0, &r);
    su_expect(&r, 200, "video_0000");
    o = get_json(&s, "/datasets/syn", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "n_items")), 4);
    json_decref(o);
    su_http(NULL, "DELETE", su_url(&s, "/datasets/syn"), NULL, NULL, 0, &r);
    su_expect(&r, 200, NULL);
    json_decref(get_json(&s, "/datasets/syn", 404));
    su_http(NULL, "DELETE", su_url(&s, "/datasets/syn"), NULL, NULL, 0, &r);
    su_expect(&r, 404, "no dataset");
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(http_bad_uploads_leave_nothing_behind)
{
    char *dir = tu_tmpdir();
    char data[4096], f[4096], g[4096], root[4096], tmp[4096];
    pathf(data, "%s/data", dir);
    pathf(root, "%s/datasets", data);
    pathf(tmp, "%s/tmp", data);
    pathf(f, "%s/a.npy", dir);
    pathf(g, "%s/b.npy", dir);
    /* request bodies in memory are small; uploads to disk may be larger */
    const char *args[] = {"--data", data, "--max-body", "65536", "--max-upload", "300000", NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    su_resp r;
    write_npy(f, 100, 256, 1); /* 100 KiB: over --max-body, under --max-upload */
    ck_assert_int_eq(put_file(&s, "/datasets/big/items/ok", f, "application/x-npy", NULL, &r), 201);
    su_resp_free(&r);
    write_npy(f, 400, 256, 1);
    ck_assert_int_eq(put_file(&s, "/datasets/big/items/no", f, "application/x-npy", NULL, &r), 413);
    su_expect(&r, 413, "--max-upload");
    ck_assert_int_eq(put_file(&s, "/models/m/versions/1", f, "application/octet-stream", NULL, &r),
                     413); /* models are loaded whole: --max-body */
    su_expect(&r, 413, "--max-body");
    su_http(NULL, "DELETE", su_url(&s, "/datasets/big"), NULL, NULL, 0, &r);
    su_expect(&r, 200, NULL);
    write_npy(f, 40, 8, 1);
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/ok", f, "application/x-npy", NULL, &r), 201);
    su_resp_free(&r);

    /* truncated (the header promises 40 x 8 floats), garbage, an empty body */
    size_t n;
    char *buf = tu_read(f, &n);
    const char *h[] = {"Content-Type: application/x-npy", NULL};
    su_http(NULL, "PUT", su_url(&s, "/datasets/d/items/t"), h, buf, n - 64, &r);
    su_expect(&r, 400, "dataset d, item t");
    su_http(NULL, "PUT", su_url(&s, "/datasets/d/items/g"), h, "{\"features\": 1}", 15, &r);
    su_expect(&r, 400, "item g");
    su_http(NULL, "PUT", su_url(&s, "/datasets/d/items/e"), h, "", 0, &r);
    su_expect(&r, 400, "empty body");
    su_http(NULL, "PUT", su_url(&s, "/datasets/d"), h, buf, n, &r); /* .npy where .npz goes */
    su_expect(&r, 415, ".npz");
    const char *hz[] = {"Content-Type: application/x-npz", NULL};
    su_http(NULL, "PUT", su_url(&s, "/datasets/z"), hz, buf, n, &r);
    su_expect(&r, 400, "npz");
    free(buf);
    /* another dimension */
    write_npy(g, 40, 12, 2);
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/w", g, "application/x-npy", NULL, &r), 422);
    su_expect(&r, 422, "C=12");
    /* [B, T, C] is a batch, not one video */
    float *x = su_input(2 * 30 * 8, 1, 3);
    int64_t sh3[3] = {2, 30, 8};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(g, x, 3, sh3, &e), 0);
    free(x);
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/b", g, "application/x-npy", NULL, &r), 422);
    su_resp_free(&r);
    /* names: traversal (decoded by the server first), hidden, too long */
    const char *bad[] = {"/datasets/..%2F..%2Fetc/items/x", "/datasets/d/items/..%2Fx",
                         "/datasets/.hidden/items/x", "/datasets/d/items/.x",
                         "/datasets/-d/items/x",
                         "/datasets/d/items/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        put_file(&s, bad[i], f, "application/x-npy", NULL, &r);
        ck_assert_msg(r.status == 400 || r.status == 404, "%s: %ld %s", bad[i], r.status,
                      r.body ? r.body : "");
        su_resp_free(&r);
    }
    json_t *o = get_json(&s, "/datasets/d", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "n_items")), 1);
    json_decref(o);
    o = get_json(&s, "/datasets", 200);
    ck_assert_int_eq(json_array_size(json_object_get(o, "datasets")), 1);
    json_decref(o);
    ck_assert_int_eq(leftovers(root), 0);

    /* a client that goes away mid-upload: no item, no temporary file */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)s.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *hdr = "PUT /datasets/gone/items/x HTTP/1.1\r\nHost: t\r\n"
                      "Content-Type: application/x-npy\r\nContent-Length: 290000\r\n\r\n";
    ck_assert_int_eq(send(fd, hdr, strlen(hdr), 0), (ssize_t)strlen(hdr));
    char chunk[65536];
    memset(chunk, 7, sizeof chunk);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(send(fd, chunk, sizeof chunk, 0), (ssize_t)sizeof chunk);
    int spooled = 0;
    for (int i = 0; i < 100 && !spooled; i++, su_sleep_ms(20))
        spooled = count_prefix(tmp, "upload.") > 0;
    ck_assert_msg(spooled, "the upload never reached %s", tmp);
    close(fd);
    int left = 1;
    for (int i = 0; i < 250 && left; i++, su_sleep_ms(20))
        left = count_prefix(tmp, "upload.");
    ck_assert_msg(!left, "%d upload files left in %s after the client went away", left, tmp);
    json_decref(get_json(&s, "/datasets/gone", 404));
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* NaN and infinities: every value of an upload is read before it is stored; one
 * refuses the item (or the whole .npz) with the item and element named, unless solad
 * runs with --allow-nonfinite. */
START_TEST(http_nonfinite_uploads_refused_unless_allowed)
{
    char *dir = tu_tmpdir();
    char data[4096], data2[4096], f[4096], z[4096], root[4096];
    pathf(data, "%s/data", dir);
    pathf(data2, "%s/data2", dir);
    pathf(root, "%s/datasets", data);
    pathf(f, "%s/nan.npy", dir);
    pathf(z, "%s/inf.npz", dir);
    /* an item with one NaN at [3, 2]; an archive whose second member holds one -Inf */
    float *x = su_input(40, 8, 5);
    x[3 * 8 + 2] = NAN;
    int64_t sh[2] = {40, 8};
    sola_err e = {0};
    ck_assert_int_eq(sola_npy_save(f, x, 2, sh, &e), 0);
    free(x);
    sola_array a[2];
    const char *names[2] = {"fine", "bad"};
    for (int i = 0; i < 2; i++) {
        a[i] = (sola_array){0};
        a[i].ndim = 2;
        a[i].shape[0] = 30;
        a[i].shape[1] = 8;
        a[i].data = su_input(30, 8, 60 + (unsigned)i);
    }
    a[1].data[29 * 8 + 7] = -INFINITY;
    ck_assert_int_eq(sola_npz_save(z, names, a, 2, 1, &e), 0);
    free(a[0].data);
    free(a[1].data);

    const char *args[] = {"--data", data, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    su_resp r;
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/n", f, "application/x-npy", NULL, &r), 400);
    ck_assert_msg(strstr(r.body, "dataset d, item n") && strstr(r.body, "[3, 2]") &&
                  strstr(r.body, "NaN"), "%s", r.body);
    su_resp_free(&r);
    ck_assert_int_eq(put_file(&s, "/datasets/z", z, "application/x-npz", NULL, &r), 400);
    ck_assert_msg(strstr(r.body, "member bad") && strstr(r.body, "[29, 7]") &&
                  strstr(r.body, "-Inf"), "%s", r.body);
    su_resp_free(&r);
    json_decref(get_json(&s, "/datasets/d", 404)); /* nothing stored */
    json_decref(get_json(&s, "/datasets/z", 404));
    ck_assert_int_eq(leftovers(root), 0);
    ck_assert_int_eq(su_stop(&s), 0);

    /* --allow-nonfinite: stored as they are */
    const char *args2[] = {"--data", data2, "--allow-nonfinite", NULL};
    ck_assert_int_eq(su_start(&s, dir, args2), 0);
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/n", f, "application/x-npy", NULL, &r), 201);
    su_resp_free(&r);
    ck_assert_int_eq(put_file(&s, "/datasets/z", z, "application/x-npz", NULL, &r), 201);
    su_resp_free(&r);
    json_t *o = get_json(&s, "/datasets/z", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "n_items")), 2);
    json_decref(o);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(http_every_mutating_route_needs_the_token)
{
    char *dir = tu_tmpdir();
    char data[4096], tok[4096], f[4096];
    pathf(data, "%s/data", dir);
    pathf(tok, "%s/token", dir);
    pathf(f, "%s/a.npy", dir);
    ck_assert_int_eq(tu_write(tok, "s3cret\n", 7), 0);
    write_npy(f, 40, 8, 1);
    const char *args[] = {"--data", data, "--token-file", tok, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    su_resp r;
    const char *good = "Authorization: Bearer s3cret", *wrong = "Authorization: Bearer nope";
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/a", f, "application/x-npy", NULL, &r), 401);
    su_resp_free(&r);
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/a", f, "application/x-npy", wrong, &r), 401);
    su_resp_free(&r);
    ck_assert_int_eq(put_file(&s, "/datasets/d", f, "application/x-npz", NULL, &r), 401);
    su_resp_free(&r);
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/a", f, "application/x-npy", good, &r), 201);
    su_resp_free(&r);
    /* reads are open */
    json_decref(get_json(&s, "/datasets/d", 200));
    json_decref(get_json(&s, "/datasets", 200));
    /* the job routes too */
    const struct {
        const char *method, *path;
    } mut[] = {{"DELETE", "/datasets/d/items/a"}, {"DELETE", "/datasets/d"},
               {"POST", "/train"},               {"DELETE", "/jobs/1"},
               {"POST", "/jobs/1/resume"}};
    const char *hj[] = {"Content-Type: application/json", NULL};
    for (size_t i = 0; i < sizeof mut / sizeof mut[0]; i++) {
        su_http(NULL, mut[i].method, su_url(&s, mut[i].path), hj, "{\"dataset\":\"d\"}", 15, &r);
        ck_assert_msg(r.status == 401, "%s %s: %ld", mut[i].method, mut[i].path, r.status);
        su_resp_free(&r);
    }
    json_t *o = get_json(&s, "/datasets/d", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "n_items")), 1);
    json_decref(o);
    const char *hg[] = {good, NULL};
    su_http(NULL, "DELETE", su_url(&s, "/datasets/d"), hg, NULL, 0, &r);
    su_expect(&r, 200, NULL);
    ck_assert_int_eq(su_stop(&s), 0);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* Enters a mount namespace of this test process (and the solad it starts), so that a
 * tmpfs mounted here disappears with the process, even when an assertion fails. As
 * root directly; otherwise through a user namespace where the kernel allows one. */
static int private_mounts(void)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (uid == 0) {
        if (unshare(CLONE_NEWNS) != 0)
            return -1;
    } else {
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return -1;
        char m[64];
        snprintf(m, sizeof m, "0 %u 1", (unsigned)uid);
        if (tu_write("/proc/self/uid_map", m, strlen(m)) ||
            tu_write("/proc/self/setgroups", "deny", 4))
            return -1;
        snprintf(m, sizeof m, "0 %u 1", (unsigned)gid);
        if (tu_write("/proc/self/gid_map", m, strlen(m)))
            return -1;
    }
    return mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
}

/* A full disk: a small tmpfs as the data directory, in a private mount namespace
 * (skipped where namespaces are not allowed). */
/* A 507 says what went wrong, not where or in which process: no data directory, no
 * PID-named temporary, no address (the Low list of docs/reliability.md, round 2). */
static void expect_no_internals(const su_resp *r, const su_server *s, const char *data)
{
    char pid[32];
    snprintf(pid, sizeof pid, ".%d.", s->pid);
    const char *b = r->body ? r->body : "";
    ck_assert_msg(!strstr(b, data) && !strstr(b, pid) && !strstr(b, "0x") && !strstr(b, "/tmp"),
                  "the reply names internals: %s", b);
}

START_TEST(http_disk_full_is_507_and_the_store_stays_consistent)
{
    char *dir = tu_tmpdir();
    char data[4096], f[4096], z[4096], root[4096], tmp[4096];
    pathf(data, "%s/data", dir);
    pathf(root, "%s/datasets", data);
    pathf(tmp, "%s/tmp", data);
    pathf(f, "%s/a.npy", dir);
    pathf(z, "%s/z.npz", dir);
    mkdir(data, 0755);
    if (private_mounts() || mount("tmpfs", data, "tmpfs", 0, "size=900k") != 0) {
        tu_skip_forbidden("disk-full check: cannot mount a small tmpfs in a private mount "
                          "namespace here (%s)", strerror(errno));
        tu_rmtree(dir);
        free(dir);
        return;
    }
    const char *args[] = {"--data", data, NULL};
    su_server s;
    ck_assert_int_eq(su_start(&s, dir, args), 0);
    su_resp r;
    write_npy(f, 100, 256, 1); /* 100 KiB */
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/a", f, "application/x-npy", NULL, &r), 201);
    su_resp_free(&r);
    /* 500 KiB archive: its body fits, but not its members beside it */
    const int T[5] = {100, 100, 100, 100, 100};
    sola_array a[5];
    const char *names[5] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) {
        a[i] = (sola_array){0};
        a[i].ndim = 2;
        a[i].shape[0] = T[i];
        a[i].shape[1] = 256;
        a[i].data = su_input(T[i], 256, 50 + (unsigned)i);
    }
    sola_err e = {0};
    ck_assert_int_eq(sola_npz_save(z, names, a, 5, 0, &e), 0);
    for (int i = 0; i < 5; i++)
        free(a[i].data);
    put_file(&s, "/datasets/big", z, "application/x-npz", NULL, &r);
    expect_no_internals(&r, &s, data);
    su_expect(&r, 507, NULL);
    /* a body larger than the free space: 507 while spooling */
    char big[4096];
    pathf(big, "%s/big.npy", dir);
    write_npy(big, 1200, 256, 3);
    put_file(&s, "/datasets/d/items/big", big, "application/x-npy", NULL, &r);
    expect_no_internals(&r, &s, data);
    su_expect(&r, 507, "disk full");
    /* nothing half-written, and the store still takes uploads that fit */
    json_decref(get_json(&s, "/datasets/big", 404));
    json_t *o = get_json(&s, "/datasets/d", 200);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "n_items")), 1);
    json_decref(o);
    ck_assert_int_eq(leftovers(root), 0);
    for (int i = 0; i < 100 && count_prefix(tmp, "upload."); i++)
        su_sleep_ms(20);
    ck_assert_int_eq(count_prefix(tmp, "upload."), 0);
    ck_assert_int_eq(put_file(&s, "/datasets/d/items/b", f, "application/x-npy", NULL, &r), 201);
    su_resp_free(&r);
    ck_assert_int_eq(su_stop(&s), 0);
    umount2(data, MNT_DETACH); /* (the namespace would drop it anyway) */
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("datasets");
    TCase *t = tcase_create("store");
    tcase_add_test(t, store_items_validated_before_they_appear);
    tcase_add_test(t, store_npz_replaces_a_dataset_whole_or_not_at_all);
    tcase_add_test(t, store_npz_syncs_once_outside_the_lock);
    suite_add_tcase(s, t);
    t = tcase_create("http");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, http_synth_dataset_item_by_item_and_as_npz);
    tcase_add_test(t, http_bad_uploads_leave_nothing_behind);
    tcase_add_test(t, http_nonfinite_uploads_refused_unless_allowed);
    tcase_add_test(t, http_every_mutating_route_needs_the_token);
    tcase_add_test(t, http_disk_full_is_507_and_the_store_stays_consistent);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return su_run(suite());
}
