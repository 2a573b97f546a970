"""OpenAPI description of the models service (served at api/openapi.json)."""

_err = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"}}

def _serving_paths() -> dict:
    """The predict and metadata routes forwarded to TF Serving: the latest version,
    a version (/versions/N) or a label (/labels/L)."""
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}}
    label = {"name": "label", "in": "path", "required": True, "schema": {"type": "string"}}
    predict = {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                   "instances": {"type": "array", "items": {}}, "inputs": {}, "signature_name": {"type": "string"}}}}}},
               "responses": {"200": {"description": "predictions"}, "400": _err, "403": _err, "404": _err, "503": _err}}
    metadata = {"responses": {"200": {"description": "metadata (signatures)"}, "403": _err, "404": _err, "503": _err}}
    paths = {}
    for where, params, what in (("", [], "the latest version"), ("/versions/{version}", [version], "one version"),
                                ("/labels/{label}", [label], "the version a label points at")):
        paths[f"/v1/models/{{name}}{where}:predict"] = {
            "parameters": [_name, *params], "post": {"summary": f"TF Serving predict: {what}", **predict}}
        paths[f"/v1/models/{{name}}{where}/metadata"] = {
            "parameters": [_name, *params], "get": {"summary": f"TF Serving metadata: {what}", **metadata}}
    return paths


OPENAPI = {
    "openapi": "3.0.3",
    "info": {
        "title": "ML hub models service",
        "version": "1.0",
        "description": "Publish, label and delete TensorFlow SavedModel versions served by "
        "TensorFlow Serving, and get predictions. Authenticate with a hub API token: "
        "'Authorization: token <token>' (in notebooks: $JUPYTERHUB_API_TOKEN).",
    },
    "servers": [{"url": "/services/models"}],
    "components": {
        "securitySchemes": {"hubToken": {"type": "apiKey", "in": "header", "name": "Authorization"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
            "Version": {
                "type": "object",
                "properties": {
                    "version": {"type": "integer"},
                    "state": {"type": "string", "description": "TF Serving state: AVAILABLE, LOADING, END, ..."},
                    "error": {"type": "string"},
                    "published_by": {"type": "string"},
                    "published_at": {"type": "number"},
                    "signature": {"type": "object"},
                },
            },
            "Model": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "owner": {"type": "string"},
                    "group": {"type": "string", "nullable": True},
                    "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "versions": {"type": "array", "items": {"$ref": "#/components/schemas/Version"}},
                    "predict_url": {"type": "string"},
                },
            },
        },
    },
    "security": [{"hubToken": []}],
    "paths": {
        "/api/models": {"get": {"summary": "List models, versions and serving state", "responses": {
            "200": {"description": "models", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"models": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}}}}},
            "401": _err}}},
        "/api/models/{name}": {
            "parameters": [_name],
            "get": {"summary": "One model", "responses": {"200": {"description": "the model", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Model"}}}}, "404": _err}},
            "delete": {"summary": "Delete a model and all its versions (owner, group, admins)",
                       "responses": {"204": {"description": "deleted"}, "403": _err, "404": _err}},
        },
        "/api/models/{name}/versions": {
            "parameters": [_name],
            "post": {
                "summary": "Publish the next version: the body is a .tar.gz, .tar or .zip of a SavedModel directory",
                "parameters": [
                    {"name": "label", "in": "query", "schema": {"type": "string"}, "description": "also point this label at it"},
                    {"name": "group", "in": "query", "schema": {"type": "string"}, "description": "hub group that may manage the model"},
                ],
                "requestBody": {"required": True, "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}},
                                                               "application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {"201": {"description": "published"}, "400": _err, "403": _err, "413": _err},
            },
        },
        "/api/models/{name}/versions/{version}": {
            "parameters": [_name, {"name": "version", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "delete": {"summary": "Delete a version", "responses": {"204": {"description": "deleted"}, "403": _err, "404": _err}},
        },
        "/api/models/{name}/labels/{label}": {
            "parameters": [_name, {"name": "label", "in": "path", "required": True, "schema": {"type": "string"}}],
            "put": {"summary": "Point a label (e.g. stable, canary) at a version",
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"version": {"type": "integer"}}}}}},
                    "responses": {"200": {"description": "labels"}, "403": _err, "404": _err}},
            "delete": {"summary": "Remove a label", "responses": {"204": {"description": "removed"}}},
        },
        "/api/models/{name}/rollback": {
            "parameters": [_name],
            "post": {"summary": "Point a label back at the version it pointed at before",
                     "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"label": {"type": "string", "default": "stable"}}}}}},
                     "responses": {"200": {"description": "labels"}, "409": _err}},
        },
        **_serving_paths(),
    },
}
