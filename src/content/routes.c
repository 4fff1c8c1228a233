/*
 * routes.c — the route table of the content API (docs/api.md).
 *
 * Order matters only where two patterns could match one path: literal
 * segments ("by-slug") come before a capture in the same place. Health and
 * the OpenAPI document are answered on the loop thread; everything that
 * reads or writes content goes to a worker.
 */
#include "content/api.h"
#include "content/content.h"

/* docs/openapi.yaml, linked into the binary by openapi_blob.S. */
extern const char openapi_yaml[];
extern const char openapi_yaml_end[];

static void handle_healthz(const http_request *req, http_response *res)
{
    (void)req;
    http_response_copy(res, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static void handle_openapi(const http_request *req, http_response *res)
{
    (void)req;
    http_response_copy(res, 200, "application/yaml", openapi_yaml, (size_t)(openapi_yaml_end - openapi_yaml));
}

#define WORKER(h) h, NULL
#define LOOP(h) NULL, h

const http_route content_routes[] = {
    {HTTP_GET, "/healthz", LOOP(handle_healthz)},
    {HTTP_GET, "/readyz", WORKER(handle_readyz)},
    {HTTP_GET, "/openapi.yaml", LOOP(handle_openapi)},
    {HTTP_GET, "/v1/:site/content/by-slug/:type/:slug", WORKER(handle_get_by_slug)},
    {HTTP_GET, "/v1/:site/content", WORKER(handle_list)},
    {HTTP_POST, "/v1/:site/content", WORKER(handle_create)},
    {HTTP_GET, "/v1/:site/content/:id", WORKER(handle_get)},
    {HTTP_PUT, "/v1/:site/content/:id", WORKER(handle_save)},
    {HTTP_DELETE, "/v1/:site/content/:id", WORKER(handle_delete)},
    {HTTP_GET, "/v1/:site/content/:id/draft", WORKER(handle_get_draft)},
    {HTTP_POST, "/v1/:site/content/:id/publish", WORKER(handle_publish)},
    {HTTP_POST, "/v1/:site/content/:id/unpublish", WORKER(handle_unpublish)},
    {HTTP_POST, "/v1/:site/content/:id/views", WORKER(handle_view)},
    {HTTP_GET, "/v1/:site/popular", WORKER(handle_popular)},
    {HTTP_GET, "/v1/:site/categories", WORKER(handle_categories)},
    {HTTP_POST, "/v1/:site/categories", WORKER(handle_category_create)},
};

const size_t content_route_count = sizeof(content_routes) / sizeof(content_routes[0]);
