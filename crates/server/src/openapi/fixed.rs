//! The fixed part of the OpenAPI document: the shared components (envelope, errors,
//! security schemes, auth payloads). The fixed routes' paths are documented by the
//! resource modules that route them (`routes::*`, through `contract::Resource`).

use utoipa::openapi::ComponentsBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{ERRORS, any_object, json_response, schema_ref, typed};

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
