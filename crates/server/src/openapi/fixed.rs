//! The fixed part of the OpenAPI document: the shared components (envelope, errors,
//! security schemes, auth payloads) and the routes that do not depend on collections.

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, Paths, RefOr, ResponseBuilder, Schema};

use super::{
    ERRORS, any_object, envelope, json_body, json_response, operation, path_param, public,
    query_param, schema_ref, typed,
};

pub(super) fn components() -> ComponentsBuilder {
    let meta = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "request_id",
            typed(Type::String, "This request's id (also in X-Request-Id)"),
        )
        .required("request_id")
        .additional_properties(Some(AdditionalProperties::FreeForm(true)));
    let list_meta = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("request_id", typed(Type::String, "This request's id"))
        .property(
            "total",
            typed(Type::Integer, "Matching records the caller may see"),
        )
        .property("page", typed(Type::Integer, "Page number, from 1"))
        .property("per_page", typed(Type::Integer, "Page size"))
        .property(
            "seq",
            typed(Type::Integer, "Log position the answer reflects"),
        )
        .required("request_id");
    let error = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "code",
            typed(
                Type::String,
                "Stable machine-readable code, e.g. unique_violation",
            ),
        )
        .property("message", typed(Type::String, "Human-readable message"))
        .property(
            "details",
            any_object("Constraint name, fields, conflicting record... (may be null)"),
        )
        .required("code")
        .required("message");
    let error_envelope = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "success",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .enum_values(Some([false])),
        )
        .property("error", schema_ref("Error"))
        .property("meta", schema_ref("Meta"))
        .required("success")
        .required("error")
        .required("meta");
    let principal = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("uuid", typed(Type::String, "Stable user id"))
        .property("email", typed(Type::String, "Email"))
        .property("role", typed(Type::String, "Role, e.g. SuperAdmin"))
        .required("uuid")
        .required("email")
        .required("role");
    let tokens = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "access_token",
            typed(Type::String, "Short-lived bearer token"),
        )
        .property(
            "refresh_token",
            typed(Type::String, "Present for providers that issue one"),
        )
        .property(
            "expires_in",
            typed(Type::Integer, "Seconds until the access token expires"),
        )
        .property("user", schema_ref("Principal"))
        .required("access_token")
        .required("expires_in")
        .required("user");
    let login = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("email", typed(Type::String, "Email"))
        .property("password", typed(Type::String, "Password"))
        .required("email")
        .required("password");
    let refresh = ObjectBuilder::new().schema_type(Type::Object).property(
        "refresh_token",
        typed(
            Type::String,
            "Refresh token (else the refresh_token cookie is used)",
        ),
    );
    let mut components = ComponentsBuilder::new()
        .schema("Meta", meta)
        .schema("ListMeta", list_meta)
        .schema("Error", error)
        .schema("ErrorEnvelope", error_envelope)
        .schema("Principal", principal)
        .schema("Tokens", tokens)
        .schema("LoginRequest", login)
        .schema("RefreshRequest", refresh)
        .schema(
            "Definition",
            any_object("A collection definition: name, schema, soft_delete, unique, check, exclude, references, nested, secret, index, owner_field, rules"),
        )
        .schema(
            "AuditEvent",
            any_object("One audited change: seq, at, txn, actor, source, collection, record_id, action, before/after..."),
        )
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        )
        .security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "access_token",
                "Session cookie set by login; writes also need X-CSRF-Token (the csrf_token cookie) or a same-origin Origin",
            ))),
        );
    for (_, (name, description)) in ERRORS {
        components = components.response(
            name,
            json_response(description, schema_ref("ErrorEnvelope")),
        );
    }
    components
}

pub(super) fn paths() -> Paths {
    let any = || any_object("Free-form");
    let ok = |d: &str, data: RefOr<Schema>| json_response(d, envelope(data, "Meta"));
    let array_of = |name: &str| -> RefOr<Schema> {
        ArrayBuilder::new().items(schema_ref(name)).build().into()
    };
    let mut paths = Paths::new();
    let mut add = |path: &str, method: HttpMethod, op: Operation| {
        paths.add_path_operation(path, vec![method], op);
    };

    add(
        "/api/auth/login",
        HttpMethod::Post,
        public(
            operation(
                "auth.login",
                "auth",
                "Log in (sets cookies, returns tokens)",
                &[
                    "BadRequest",
                    "Unauthorized",
                    "TooManyRequests",
                    "Unavailable",
                ],
            )
            .request_body(json_body(schema_ref("LoginRequest"), "Credentials"))
            .response("200", ok("Tokens and the user", schema_ref("Tokens"))),
        ),
    );
    add(
        "/api/auth/refresh",
        HttpMethod::Post,
        public(
            operation(
                "auth.refresh",
                "auth",
                "Exchange a refresh token for new tokens (rotates it)",
                &["BadRequest", "Unauthorized", "Unavailable"],
            )
            .request_body(json_body(
                schema_ref("RefreshRequest"),
                "The refresh token, unless sent as a cookie",
            ))
            .response("200", ok("New tokens", schema_ref("Tokens"))),
        ),
    );
    add(
        "/api/auth/logout",
        HttpMethod::Post,
        public(
            operation(
                "auth.logout",
                "auth",
                "Log out (revokes the refresh token, clears cookies)",
                &["BadRequest"],
            )
            .response("200", ok("Logged out", any().into())),
        ),
    );
    add(
        "/api/auth/me",
        HttpMethod::Get,
        operation(
            "auth.me",
            "auth",
            "Who the token belongs to",
            &["Unauthorized", "Forbidden", "Unavailable"],
        )
        .response("200", ok("The caller", schema_ref("Principal")))
        .build(),
    );
    add(
        "/api/v1/collections",
        HttpMethod::Get,
        operation(
            "collections.list",
            "collections",
            "All collection definitions",
            &["Unauthorized", "Forbidden"],
        )
        .response("200", ok("Definitions", array_of("Definition")))
        .build(),
    );
    add(
        "/api/v1/collections",
        HttpMethod::Post,
        operation(
            "collections.define",
            "collections",
            "Define or replace a collection (SuperAdmin)",
            &[
                "BadRequest",
                "Unauthorized",
                "Forbidden",
                "Conflict",
                "Unprocessable",
            ],
        )
        .request_body(json_body(schema_ref("Definition"), "The definition"))
        .response("200", ok("The stored definition", schema_ref("Definition")))
        .build(),
    );
    let name = path_param("name", "Collection name");
    add(
        "/api/v1/collections/{name}",
        HttpMethod::Get,
        operation(
            "collections.get",
            "collections",
            "One collection definition",
            &["Unauthorized", "Forbidden", "NotFound"],
        )
        .parameter(name.clone())
        .response("200", ok("The definition", schema_ref("Definition")))
        .build(),
    );
    add(
        "/api/v1/collections/{name}",
        HttpMethod::Patch,
        operation(
            "collections.redefine",
            "collections",
            "Change members of a definition (SuperAdmin)",
            &[
                "BadRequest",
                "Unauthorized",
                "Forbidden",
                "NotFound",
                "Conflict",
                "Unprocessable",
            ],
        )
        .parameter(name)
        .request_body(json_body(schema_ref("Definition"), "Members to replace"))
        .response("200", ok("The stored definition", schema_ref("Definition")))
        .build(),
    );
    let mut audit = operation(
        "audit.query",
        "audit",
        "Audit events, newest first (SuperAdmin)",
        &["BadRequest", "Unauthorized", "Forbidden"],
    );
    for (p, t, d) in [
        ("collection", Type::String, "Only this collection"),
        ("record_id", Type::String, "Only this record"),
        ("actor", Type::String, "Only this actor (user uuid)"),
        (
            "source",
            Type::String,
            "Only this source (`import:` matches every import)",
        ),
        ("from", Type::String, "Not before this RFC 3339 time"),
        ("to", Type::String, "Not after this RFC 3339 time"),
        (
            "limit",
            Type::Integer,
            "Most events (default 100, at most 1000)",
        ),
    ] {
        audit = audit.parameter(query_param(p, t, d));
    }
    add(
        "/api/v1/audit",
        HttpMethod::Get,
        audit
            .response("200", ok("Events", array_of("AuditEvent")))
            .build(),
    );
    add(
        "/api/v1/audit/verify",
        HttpMethod::Get,
        operation(
            "audit.verify",
            "audit",
            "Verify the log's hash chain (SuperAdmin)",
            &["Unauthorized", "Forbidden"],
        )
        .response(
            "200",
            ok(
                "intact, verified, head_hash, first_break, voided",
                any().into(),
            ),
        )
        .build(),
    );
    add(
        "/api/v1/audit/digest",
        HttpMethod::Get,
        public(
            operation(
                "audit.digest",
                "audit",
                "The public key and the newest signed audit digest (404 when this server signs none)",
                &["NotFound"],
            )
            .response("200", ok("public_key, key_id, digest", any().into())),
        ),
    );
    add(
        "/healthz",
        HttpMethod::Get,
        public(
            operation("system.healthz", "system", "Liveness", &[])
                .response("200", ok("ok", any().into())),
        ),
    );
    add(
        "/readyz",
        HttpMethod::Get,
        public(
            operation(
                "system.readyz",
                "system",
                "Readiness: the store answers and the log tailer keeps up (its lag is reported)",
                &["Unavailable"],
            )
            .response("200", ok("ready, with the log head", any().into())),
        ),
    );
    add(
        "/metrics",
        HttpMethod::Get,
        public(
            operation(
                "system.metrics",
                "system",
                "Prometheus metrics (OpenMetrics text)",
                &[],
            )
            .response(
                "200",
                ResponseBuilder::new()
                    .description("OpenMetrics text exposition")
                    .content(crate::metrics::CONTENT_TYPE, ContentBuilder::new().build())
                    .build(),
            ),
        ),
    );
    add(
        "/api/openapi.json",
        HttpMethod::Get,
        public(
            operation("system.openapi", "system", "This document", &[])
                .response("200", json_response("OpenAPI 3.1 document", any())),
        ),
    );
    add(
        "/api/docs",
        HttpMethod::Get,
        public(
            operation(
                "system.docs",
                "system",
                "Human-readable API reference (HTML)",
                &[],
            )
            .response(
                "200",
                ResponseBuilder::new()
                    .description("HTML page rendering this document")
                    .content("text/html", ContentBuilder::new().build())
                    .build(),
            ),
        ),
    );
    paths
}
