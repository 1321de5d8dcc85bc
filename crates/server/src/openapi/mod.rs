//! The OpenAPI 3.1 document served at `/api/openapi.json`.
//!
//! The generic API is per collection and collections are defined at run time (records of
//! `_collections`), so the document cannot be derived from handler annotations at compile
//! time: it is built on each request from the current definitions. The fixed routes
//! (auth, definitions, audit, health) come from here; each collection's paths and
//! schemas from [`collections`]. utoipa provides the typed OpenAPI model and its JSON
//! form; we use its builders, not its derive macros.
//!
//! Collection schemas are operator-written JSON Schema, and an OpenAPI 3.1 schema *is*
//! JSON Schema (2020-12), so they are copied verbatim ([`raw_schema`]) rather than
//! squeezed through utoipa's typed schema subset, which would drop keywords it does not
//! model. Access rules (CEL) are not published: only shapes are.

mod collections;
mod fixed;

use bucketbase_engine::collection::Compiled;
use serde_json::Value;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, RefOr, Required, Response,
    ResponseBuilder, Schema,
};

/// Where component schemas are referenced from.
pub(crate) fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}

/// A JSON Schema carried verbatim: an untyped object schema with no fields of its own
/// whose (flattened) extension map holds every keyword of `schema`.
pub(crate) fn raw_schema(schema: &Value) -> Schema {
    let keywords = schema.as_object().cloned().unwrap_or_default();
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .extensions(Some(Extensions::from_iter(keywords)))
            .build(),
    )
}

pub(crate) fn typed(t: Type, description: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(t)
            .description(Some(description))
            .build(),
    )
}

/// An object with free-form members, described.
pub(crate) fn any_object(description: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(description))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .build(),
    )
}

/// The success envelope around `data`, with `meta` of the named component.
pub(crate) fn envelope(data: impl Into<RefOr<Schema>>, meta: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "success",
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([true])),
            )
            .property("data", data)
            .property("meta", schema_ref(meta))
            .required("success")
            .required("data")
            .required("meta")
            .build(),
    )
}

pub(crate) fn json_response(description: &str, schema: impl Into<RefOr<Schema>>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

pub(crate) fn json_body(
    schema: impl Into<RefOr<Schema>>,
    description: &str,
) -> Option<RequestBody> {
    Some(
        RequestBodyBuilder::new()
            .description(Some(description))
            .required(Some(Required::True))
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(schema)).build(),
            )
            .build(),
    )
}

fn parameter(
    name: &str,
    place: ParameterIn,
    required: Required,
    t: Type,
    description: &str,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(required)
        .description(Some(description))
        .schema(Some(Schema::Object(
            ObjectBuilder::new().schema_type(t).build(),
        )))
        .build()
}

pub(crate) fn path_param(name: &str, description: &str) -> Parameter {
    parameter(
        name,
        ParameterIn::Path,
        Required::True,
        Type::String,
        description,
    )
}

pub(crate) fn query_param(name: &str, t: Type, description: &str) -> Parameter {
    parameter(name, ParameterIn::Query, Required::False, t, description)
}

pub(crate) fn header_param(name: &str, description: &str) -> Parameter {
    parameter(
        name,
        ParameterIn::Header,
        Required::False,
        Type::String,
        description,
    )
}

/// An operation with its id, tag, summary, the named error responses (component names
/// from [`ERRORS`]) and 500.
pub(crate) fn operation(id: &str, tag: &str, summary: &str, errors: &[&str]) -> OperationBuilder {
    let mut op = OperationBuilder::new()
        .operation_id(Some(id))
        .tag(tag)
        .summary(Some(summary));
    for (status, (name, _)) in ERRORS {
        if errors.contains(&name) || name == "Internal" {
            op = op.response(
                status,
                RefOr::Ref(utoipa::openapi::Ref::from_response_name(name)),
            );
        }
    }
    op
}

/// Marks an operation as open to anonymous callers.
pub(crate) fn public(op: OperationBuilder) -> Operation {
    op.security(SecurityRequirement::default()).build()
}

/// A success answer: `data` in the envelope with `Meta`.
pub(crate) fn ok(description: &str, data: RefOr<Schema>) -> Response {
    json_response(description, envelope(data, "Meta"))
}

/// A free-form object.
pub(crate) fn any() -> RefOr<Schema> {
    any_object("Free-form").into()
}

/// An array of the named component schema.
pub(crate) fn array_of(name: &str) -> RefOr<Schema> {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(schema_ref(name))
        .build()
        .into()
}

/// Error responses: status → (component name, description).
const ERRORS: [(&str, (&str, &str)); 12] = [
    (
        "400",
        ("BadRequest", "Malformed input (bad JSON, bad parameter)"),
    ),
    ("401", ("Unauthorized", "Missing, invalid or expired token")),
    ("403", ("Forbidden", "Authenticated but not allowed")),
    (
        "404",
        (
            "NotFound",
            "No such collection or record, or one the caller may not see",
        ),
    ),
    (
        "409",
        (
            "Conflict",
            "A constraint (unique, check, exclusion, reference) was violated",
        ),
    ),
    (
        "412",
        (
            "PreconditionFailed",
            "If-Match named a version that is no longer current",
        ),
    ),
    ("413", ("TooLarge", "Request body too large")),
    (
        "415",
        ("UnsupportedMediaType", "Body is not application/json"),
    ),
    (
        "422",
        (
            "Unprocessable",
            "The record does not match the collection's schema",
        ),
    ),
    ("429", ("TooManyRequests", "Too many attempts; retry later")),
    (
        "503",
        (
            "Unavailable",
            "Storage or identity service unavailable; retry later",
        ),
    ),
    (
        "500",
        (
            "Internal",
            "Internal error (details are logged, never sent)",
        ),
    ),
];

/// The whole document for these definitions (system collections excluded by the caller).
pub fn document<'a>(definitions: impl IntoIterator<Item = &'a Compiled>) -> OpenApi {
    let mut paths = utoipa::openapi::Paths::new();
    let mut components = fixed::components();
    let mut tags = vec![
        TagBuilder::new()
            .name("auth")
            .description(Some("Sessions and tokens"))
            .build(),
        TagBuilder::new()
            .name("collections")
            .description(Some("Collection definitions"))
            .build(),
        TagBuilder::new()
            .name("events")
            .description(Some("The change feed (Server-Sent Events)"))
            .build(),
        TagBuilder::new()
            .name("audit")
            .description(Some("The audit trail"))
            .build(),
        TagBuilder::new()
            .name("system")
            .description(Some("Health, metrics, this document"))
            .build(),
    ];
    for def in definitions {
        if let Some(added) = collections::add(&mut paths, def) {
            tags.push(added.tag);
            for (name, schema) in added.schemas {
                components = components.schema(name, schema);
            }
        }
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Bucketbase API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "JSON records in object storage. Every JSON answer uses one envelope: \
                     `{success, data, meta}` or `{success: false, error: {code, message, details}, meta}`; \
                     every answer carries `X-Request-Id`. Collection paths are generated from the \
                     collection definitions current when this document was requested.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .security(Some([
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("cookie", Vec::<String>::new()),
        ]))
        .tags(Some(tags))
        .build()
}
