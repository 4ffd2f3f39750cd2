//! The OpenAPI 3.1 document of the service, served at `/openapi.json`.

use serde_json::{json, Value};

pub fn document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let errors = |codes: &[(&str, &str)]| -> Value {
        codes
            .iter()
            .map(|(code, why)| {
                (
                    code.to_string(),
                    json!({ "description": why, "content": { "application/json": { "schema": error } } }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let points = json!({ "type": "array", "items": { "type": "array", "items": { "type": "number" }, "minItems": 2, "maxItems": 2 }, "description": "[lon, lat] pairs in degrees (WGS84)" });
    let model = json!({ "type": "string", "description": "a model name from /info; the default when absent" });
    let mut embed_responses = errors(&[
        ("400", "not JSON, Arrow or NPY that can be read"),
        ("401", "missing or wrong bearer token"),
        ("413", "body or point count over the limit"),
        ("415", "unsupported Content-Type"),
        ("422", "invalid request: names the first bad point and why"),
        ("429", "queue full; retry after Retry-After seconds"),
        ("503", "timed out"),
    ]);
    embed_responses["200"] = json!({
        "description": "embeddings, in the format Accept asks for (else the request's)",
        "content": {
            "application/json": { "schema": { "type": "object", "properties": {
                "model": { "type": "string" }, "dim": { "type": "integer" },
                "embeddings": { "type": "array", "items": { "type": "array", "items": { "type": "number" } } } } } },
            "application/vnd.apache.arrow.stream": { "schema": { "type": "string", "format": "binary", "description": "the request's columns (or lon, lat) and `embedding`, a fixed-size list of float32" } },
            "application/x-npy": { "schema": { "type": "string", "format": "binary", "description": "[N, dim] float32" } }
        }
    });
    json!({
        "openapi": "3.1.0",
        "info": { "title": "satclip", "version": env!("CARGO_PKG_VERSION"), "description": "SatCLIP location embeddings over HTTP" },
        "components": {
            "schemas": { "Error": { "type": "object", "properties": { "error": { "type": "string" }, "status": { "type": "integer" } } } },
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "security": [ { "bearer": [] } ],
        "paths": {
            "/embed": { "post": {
                "summary": "Embed points",
                "parameters": [
                    { "name": "model", "in": "query", "schema": { "type": "string" }, "description": "for Arrow and NPY bodies" },
                    { "name": "normalize", "in": "query", "schema": { "type": "boolean" } },
                    { "name": "lon", "in": "query", "schema": { "type": "string" }, "description": "Arrow: longitude column" },
                    { "name": "lat", "in": "query", "schema": { "type": "string" }, "description": "Arrow: latitude column" }
                ],
                "requestBody": { "required": true, "content": {
                    "application/json": { "schema": { "type": "object", "required": ["coordinates"], "properties": {
                        "coordinates": points, "model": model, "normalize": { "type": "boolean", "default": false } } } },
                    "application/vnd.apache.arrow.stream": { "schema": { "type": "string", "format": "binary", "description": "a stream with lon and lat columns (any numeric type)" } },
                    "application/x-npy": { "schema": { "type": "string", "format": "binary", "description": "[N, 2] (lon, lat), float32 or float64" } }
                } },
                "responses": embed_responses
            } },
            "/similarity": { "post": {
                "summary": "Cosine similarity of every point of a to every point of b",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["a", "b"], "properties": { "a": points, "b": points, "model": model } } } } },
                "responses": { "200": { "description": "len(a) × len(b) matrix", "content": { "application/json": { "schema": { "type": "object", "properties": { "model": { "type": "string" }, "similarity": { "type": "array", "items": { "type": "array", "items": { "type": "number" } } } } } } } } }
            } },
            "/locate": { "post": {
                "summary": "Where on Earth a Sentinel-2 tile (12-band S2-100K GeoTIFF) was taken: top-k candidates",
                "parameters": [ { "name": "model", "in": "query", "schema": { "type": "string" } }, { "name": "top_k", "in": "query", "schema": { "type": "integer", "default": 5 } } ],
                "requestBody": { "required": true, "content": { "image/tiff": { "schema": { "type": "string", "format": "binary" } } } },
                "responses": { "200": { "description": "candidates, best first, with the tile's own centre when georeferenced" } }
            } },
            "/health": { "get": { "summary": "Liveness", "security": [], "responses": { "200": { "description": "ok" } } } },
            "/info": { "get": { "summary": "Models (name, spec, dim, SHA-256 of the weights), version and limits", "responses": { "200": { "description": "JSON" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "text exposition format" } } } },
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1" } } } }
        }
    })
}
