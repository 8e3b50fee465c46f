/* routes.h -- the route tables (one per api/routes_*.c file) that router.c gathers,
 * and helpers shared between route files. */
#ifndef SOLA_API_ROUTES_H
#define SOLA_API_ROUTES_H

#include "api.h"

/* Each table ends with an entry whose method is NULL. */
extern const api_route api_routes_ops[];    /* livez, readyz, healthz, metrics, openapi */
extern const api_route api_routes_infer[];  /* refine, tsm */
extern const api_route api_routes_models[]; /* model registry */
extern const api_route api_routes_datasets[]; /* training data uploads */
extern const api_route api_routes_jobs[];   /* training jobs */
extern const api_route api_routes_web[];    /* the web page: /, /static/NAME */
extern const api_route api_routes_v2[];     /* Open Inference Protocol v2 */
extern const api_route api_routes_streams[]; /* open streams of online refine */

/* The OpenAPI document (static JSON text). */
extern const char api_openapi_json[];

#endif
