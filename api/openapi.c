/* openapi.c -- GET /openapi.json: a hand-written OpenAPI 3.0 summary of the routes.
 * Kept short on purpose: paths, methods, parameters, media types and statuses; the
 * prose lives in docs/daemon.md. Update it with the route tables. */
#include "routes.h"

#define ERR "{\"$ref\":\"#/components/responses/Error\"}"
#define Q(n, d) "{\"name\":\"" n "\",\"in\":\"query\",\"required\":false,\"schema\":{\"type\":\"string\"},\"description\":\"" d "\"}"
#define P(n) "{\"name\":\"" n "\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}}"
#define FEAT_BODY                                                                          \
    "\"requestBody\":{\"required\":true,\"content\":{"                                   \
    "\"application/json\":{\"schema\":{\"$ref\":\"#/components/schemas/FeatureRequest\"}}," \
    "\"application/x-npy\":{\"schema\":{\"type\":\"string\",\"format\":\"binary\"}}}}"
#define FEAT_PARAMS                                                                        \
    "\"parameters\":[" Q("model", "model name (default: the default model)") ","         \
    Q("version", "model version (default: the active one)") ","                          \
    Q("tsm", "raw, refined or both") "," Q("format", "reply format: json, npy, npz (png for /tsm)") "]"
#define ERRS                                                                               \
    "\"400\":" ERR ",\"404\":" ERR ",\"406\":" ERR ",\"413\":" ERR ",\"415\":" ERR        \
    ",\"422\":" ERR ",\"503\":" ERR

const char api_openapi_json[] =
    "{\"openapi\":\"3.0.3\","
    "\"info\":{\"title\":\"solad\",\"version\":\"" API_VERSION "\","
    "\"description\":\"SoLa feature refinement service (see docs/daemon.md)\"},"
    "\"paths\":{"
    "\"/refine\":{\"post\":{\"summary\":\"Refine a [T,C] or [B,T,C] feature sequence\","
    FEAT_PARAMS "," FEAT_BODY ","
    "\"responses\":{\"200\":{\"description\":\"refined features (and TSMs)\","
    "\"headers\":{\"X-Model\":{\"schema\":{\"type\":\"string\"}},\"X-Model-Version\":{\"schema\":{\"type\":\"integer\"}}},"
    "\"content\":{\"application/json\":{},\"application/x-npy\":{},\"application/x-npz\":{}}}," ERRS "}}},"
    "\"/tsm\":{\"post\":{\"summary\":\"Temporal self-similarity map of a sequence\","
    FEAT_PARAMS "," FEAT_BODY ","
    "\"responses\":{\"200\":{\"description\":\"TSM\",\"content\":{\"application/json\":{},"
    "\"application/x-npy\":{},\"application/x-npz\":{},\"image/png\":{}}}," ERRS "}},"
    "\"get\":{\"summary\":\"TSM of a stored dataset item\",\"parameters\":["
    Q("dataset", "dataset name") "," Q("item", "item name") "," Q("model", "model") ","
    Q("version", "version") "," Q("tsm", "raw, refined or both") "," Q("format", "json, npy, npz or png") "],"
    "\"responses\":{\"200\":{\"description\":\"TSM\"}," ERRS "}}},"
    "\"/models\":{\"get\":{\"summary\":\"List models\",\"responses\":{\"200\":{\"description\":\"models\"}}}},"
    "\"/models/{model}\":{\"get\":{\"summary\":\"Versions, active version, shapes, metadata\","
    "\"parameters\":[" P("model") "],\"responses\":{\"200\":{\"description\":\"model\"},\"404\":" ERR "}}},"
    "\"/models/{model}/versions/{version}\":{"
    "\"get\":{\"summary\":\"Download a version (safetensors)\",\"parameters\":[" P("model") "," P("version") "],"
    "\"responses\":{\"200\":{\"description\":\"file\",\"content\":{\"application/octet-stream\":{}}},\"404\":" ERR "}},"
    "\"put\":{\"summary\":\"Upload a version (safetensors body); the first version of a model becomes active\","
    "\"security\":[{\"bearer\":[]}],\"parameters\":[" P("model") "," P("version") "],"
    "\"requestBody\":{\"required\":true,\"content\":{\"application/octet-stream\":{\"schema\":{\"type\":\"string\",\"format\":\"binary\"}}}},"
    "\"responses\":{\"201\":{\"description\":\"stored\"},\"400\":" ERR ",\"401\":" ERR ",\"409\":" ERR ",\"413\":" ERR ",\"415\":" ERR "}}},"
    "\"/models/{model}/activate\":{\"post\":{\"summary\":\"Make a version active (rollback = an older one)\","
    "\"security\":[{\"bearer\":[]}],\"parameters\":[" P("model") "],"
    "\"requestBody\":{\"content\":{\"application/json\":{\"schema\":{\"type\":\"object\",\"properties\":{\"version\":{\"type\":\"integer\"}}}}}},"
    "\"responses\":{\"200\":{\"description\":\"activated\"},\"401\":" ERR ",\"404\":" ERR "}}},"
    "\"/livez\":{\"get\":{\"summary\":\"Process alive\",\"responses\":{\"200\":{\"description\":\"alive\"}}}},"
    "\"/readyz\":{\"get\":{\"summary\":\"Ready to serve\",\"responses\":{\"200\":{\"description\":\"ready\"},\"503\":" ERR "}}},"
    "\"/healthz\":{\"get\":{\"summary\":\"Health detail (JSON)\",\"responses\":{\"200\":{\"description\":\"detail\"}}}},"
    "\"/metrics\":{\"get\":{\"summary\":\"Prometheus metrics\",\"responses\":{\"200\":{\"description\":\"text format 0.0.4\",\"content\":{\"text/plain\":{}}}}}},"
    "\"/openapi.json\":{\"get\":{\"summary\":\"This document\",\"responses\":{\"200\":{\"description\":\"OpenAPI\"}}}}"
    "},"
    "\"components\":{"
    "\"securitySchemes\":{\"bearer\":{\"type\":\"http\",\"scheme\":\"bearer\"}},"
    "\"schemas\":{\"FeatureRequest\":{\"type\":\"object\",\"required\":[\"features\"],\"properties\":{"
    "\"features\":{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}}},"
    "\"model\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\"},"
    "\"tsm\":{\"type\":\"string\",\"enum\":[\"raw\",\"refined\",\"both\"]}}},"
    "\"Error\":{\"type\":\"object\",\"properties\":{\"error\":{\"type\":\"string\"}}}},"
    "\"responses\":{\"Error\":{\"description\":\"error\",\"content\":{\"application/json\":{\"schema\":{\"$ref\":\"#/components/schemas/Error\"}}}}}"
    "}}\n";
