/* soak.c -- the long soak's driver (see soak.sh, which starts solad and builds this):
 *   soak --port P --pid PID --model M --dim C --v2 FILE [--seconds S] [--clients N]
 *        [--sample S]
 * Prints the RSS/fd table and the verdict; exits 0 when every check passed. */
#include <getopt.h>

#include "soakrun.h"

int main(int argc, char **argv)
{
    sk_config cfg = {.clients = 32, .seconds = 240, .C = 256, .model = "m",
                     .sample_every_s = 5, .max_T = 1000};
    static const struct option lo[] = {{"port", 1, 0, 'p'},   {"pid", 1, 0, 'P'},
                                       {"model", 1, 0, 'm'},  {"dim", 1, 0, 'C'},
                                       {"v2", 1, 0, 'v'},     {"seconds", 1, 0, 's'},
                                       {"clients", 1, 0, 'n'}, {"sample", 1, 0, 'i'},
                                       {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'p': cfg.port = atoi(optarg); break;
        case 'P': cfg.pid = atoi(optarg); break;
        case 'm': cfg.model = optarg; break;
        case 'C': cfg.C = atoi(optarg); break;
        case 'v': cfg.v2_path = optarg; break;
        case 's': cfg.seconds = atof(optarg); break;
        case 'n': cfg.clients = atoi(optarg); break;
        case 'i': cfg.sample_every_s = atof(optarg); break;
        default: return 2;
        }
    }
    if (!cfg.port || !cfg.pid) {
        fprintf(stderr, "soak: --port and --pid are required\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    sk_result *r = calloc(1, sizeof *r);
    sk_run(&cfg, r);
    int fds = sk_fds_settled(cfg.pid, r->s[0].fds, 10000);
    sk_print(stdout, r);
    long warm, end;
    int bad = sk_judge(stdout, &cfg, r, fds, &warm, &end);
    printf("RSS: start %.1f MiB, post-warm-up %.1f MiB, end %.1f MiB; fds: %d before, %d after\n",
           (double)r->s[0].rss_kb / 1024, (double)warm / 1024, (double)end / 1024, r->s[0].fds,
           fds);
    printf("%s\n", bad ? "SOAK FAILED" : "SOAK PASSED");
    free(r);
    curl_global_cleanup();
    return bad ? 1 : 0;
}
