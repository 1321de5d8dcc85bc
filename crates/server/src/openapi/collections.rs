//! One collection's part of the OpenAPI document: its paths under `/api/v1/{name}` and
//! its component schemas, `{name}` (the definition's JSON Schema, what clients send) and
//! `{name}.record` (what the API answers: those fields + metadata + nested arrays).
//! Collection names are `[a-z0-9_]`, so the dotted names never collide with another
//! collection's or with the fixed components (which are capitalised).

use bucketbase_engine::collection::Compiled;
use bucketbase_engine::collection::definition::NestedDef;
use bucketbase_engine::collection::query::MAX_PER_PAGE;
use bucketbase_engine::collection::secret::SecretPath;
use serde_json::{Value, json};
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::tag::{Tag, TagBuilder};
use utoipa::openapi::{Header, Paths, RefOr, Schema};

use super::{
    envelope, header_param, json_body, json_response, operation, path_param, query_param,
    raw_schema, schema_ref, typed,
};

/// Collection names whose generic routes the fixed routes shadow (`/api/v1/collections`,
/// `/api/v1/audit`): they are left out rather than documented wrongly.
const SHADOWED: [&str; 2] = ["collections", "audit"];

/// What one collection adds to the document.
pub(super) struct Added {
    pub tag: Tag,
    pub schemas: Vec<(String, RefOr<Schema>)>,
}

/// The metadata every record carries, set by the engine.
fn metadata_schema() -> ObjectBuilder {
    let text = |d: &str| typed(Type::String, d);
    let nullable = |d: &str| {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .description(Some(d))
                .build(),
        )
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("id", text("Record id (given on create, else a UUID)"))
        .property("created_at", text("RFC 3339 time"))
        .property("created_by", text("Actor (user uuid)"))
        .property("updated_at", text("RFC 3339 time"))
        .property("updated_by", text("Actor (user uuid)"))
        .property("deleted_at", nullable("Set while soft-deleted"))
        .property("deleted_by", nullable("Set while soft-deleted"))
        .property(
            "_version",
            typed(
                Type::Integer,
                "Log position of the last change; the ETag, and what If-Match names",
            ),
        )
        .required("id")
        .required("_version")
}

/// Nested array names usable as one path segment, other than the record routes'.
fn path_safe(name: &str) -> bool {
    !name.is_empty()
        && !matches!(name, "restore" | "history")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Adds `def`'s paths; returns its tag and schemas, or `None` when it is not served by
/// the generic API.
pub(super) fn add(paths: &mut Paths, def: &Compiled) -> Option<Added> {
    let name = def.name.as_str();
    if bucketbase_engine::CollectionName::parse(name).is_err() || SHADOWED.contains(&name) {
        return None;
    }
    let record_name = format!("{name}.record");
    let nested: Vec<(&String, &NestedDef)> = def
        .def
        .nested
        .iter()
        .filter(|(field, _)| path_safe(field))
        .collect();

    let schemas = vec![
        (name.to_owned(), raw_schema(&def.def.schema).into()),
        (
            record_name.clone(),
            raw_schema(&record_schema(def, &nested)).into(),
        ),
    ];

    let ops = Ops {
        name,
        record: &record_name,
    };
    let base = format!("/api/v1/{name}");
    let one = format!("{base}/{{id}}");
    let mut add = |path: &str, method: HttpMethod, op: Operation| {
        paths.add_path_operation(path, vec![method], op);
    };
    add(&base, HttpMethod::Get, ops.list(def));
    add(&base, HttpMethod::Post, ops.create());
    add(&one, HttpMethod::Get, ops.read());
    add(&one, HttpMethod::Patch, ops.update());
    add(&one, HttpMethod::Put, ops.replace());
    add(&one, HttpMethod::Delete, ops.delete(def.def.soft_delete));
    if def.def.soft_delete {
        add(&format!("{one}/restore"), HttpMethod::Post, ops.restore());
    }
    add(&format!("{one}/history"), HttpMethod::Get, ops.history());
    for (field, n) in &nested {
        let items = format!("{one}/{field}");
        let item = format!("{items}/{{item_id}}");
        add(&items, HttpMethod::Get, ops.nested_list(field, n).build());
        add(
            &items,
            HttpMethod::Post,
            ops.nested_append(field, n).build(),
        );
        add(
            &item,
            HttpMethod::Get,
            ops.nested_read(field, n, "item_id").build(),
        );
        add(
            &item,
            HttpMethod::Patch,
            ops.nested_patch(field, "item_id").build(),
        );
        add(
            &item,
            HttpMethod::Delete,
            ops.nested_remove(field, "item_id").build(),
        );
        // An item's own arrays (two levels deep).
        for (sub, s) in n.nested.iter().filter(|(sub, _)| path_safe(sub)) {
            let name = format!("{field}.{sub}");
            let subs = format!("{item}/{sub}");
            let sub_item = format!("{subs}/{{sub_item_id}}");
            let list = ops.nested_list(&name, s).parameter(item_id());
            add(&subs, HttpMethod::Get, list.build());
            let append = ops.nested_append(&name, s).parameter(item_id());
            add(&subs, HttpMethod::Post, append.build());
            let read = ops.nested_read(&name, s, "sub_item_id");
            add(&sub_item, HttpMethod::Get, with_item_id(read));
            let patch = ops.nested_patch(&name, "sub_item_id");
            add(&sub_item, HttpMethod::Patch, with_item_id(patch));
            let remove = ops.nested_remove(&name, "sub_item_id");
            add(&sub_item, HttpMethod::Delete, with_item_id(remove));
        }
    }

    let description = def
        .def
        .description
        .clone()
        .unwrap_or_else(|| format!("Records of the {name} collection"));
    let tag = TagBuilder::new()
        .name(name)
        .description(Some(description))
        .build();
    Some(Added { tag, schemas })
}

/// What the API answers for a record: the collection's schema with the metadata and
/// the nested arrays added to its `properties` (so `additionalProperties: false` still
/// holds), secret fields as the mask they read back as, and not required (lists omit them).
fn record_schema(def: &Compiled, nested: &[(&String, &NestedDef)]) -> Value {
    let mut schema = def.def.schema.clone();
    secret_places(
        &mut schema,
        def.secrets.paths().filter(|p| p.field().is_none()),
    );
    let metadata = serde_json::to_value(metadata_schema().build()).unwrap_or_default();
    let Some(object) = schema.as_object_mut() else {
        return schema;
    };
    object.insert("description".into(), json!(RECORD_DESCRIPTION));
    let properties = object.entry("properties").or_insert_with(|| json!({}));
    if let Some(properties) = properties.as_object_mut() {
        for field in def.def.secret.iter().filter(|f| def.is_secret(f)) {
            properties.insert(
                field.clone(),
                json!({"type": "string", "description": SECRET}),
            );
        }
        for (field, schema) in metadata["properties"].as_object().into_iter().flatten() {
            properties.insert(field.clone(), schema.clone());
        }
        for (field, n) in nested {
            let mut array = json!({"type": "array", "items": item_schema(n)});
            if let Some(max) = n.max_items {
                array["maxItems"] = json!(max);
            }
            properties.insert((*field).clone(), array);
        }
    }
    let required = object.entry("required").or_insert_with(|| json!([]));
    if let Some(required) = required.as_array_mut() {
        required.retain(|r| !r.as_str().is_some_and(|r| def.is_secret(r)));
        for field in ["id", "_version"] {
            if !required.iter().any(|r| r == field) {
                required.push(json!(field));
            }
        }
    }
    schema
}

const RECORD_DESCRIPTION: &str =
    "A stored record: the collection's fields, the metadata the engine sets, and nested arrays";

/// A nested item as stored: the nested schema with the id and times the engine sets.
/// What a secret reads back as.
const SECRET: &str = "Secret: stored encrypted, read back masked, omitted from lists";

/// Secret places inside a schema read back as the mask, or as declared where the path's
/// filter does not hold.
fn secret_places<'a>(schema: &mut Value, paths: impl Iterator<Item = &'a SecretPath>) {
    for path in paths {
        if let Some(sub) = path.sub_schema_mut(schema) {
            let declared = std::mem::take(sub);
            *sub = json!({"anyOf": [declared, {"type": "string", "description": SECRET}]});
        }
    }
}

fn item_schema(n: &NestedDef) -> Value {
    let mut schema = n.schema.clone();
    let paths: Vec<SecretPath> = n
        .secret
        .iter()
        .filter_map(|p| SecretPath::parse(p).ok())
        .collect();
    secret_places(&mut schema, paths.iter());
    if let Some(object) = schema.as_object_mut() {
        let properties = object.entry("properties").or_insert_with(|| json!({}));
        if let Some(properties) = properties.as_object_mut() {
            for (field, description) in [
                ("id", "Item id (assigned unless given)"),
                ("created_at", "RFC 3339 time"),
                ("updated_at", "RFC 3339 time"),
            ] {
                properties
                    .entry(field)
                    .or_insert_with(|| json!({"type": "string", "description": description}));
            }
        }
    }
    schema
}

/// Builds one collection's operations.
struct Ops<'a> {
    name: &'a str,
    record: &'a str,
}

impl Ops<'_> {
    fn op(&self, action: &str, summary: &str, errors: &[&str]) -> OperationBuilder {
        let mut all = vec!["Unauthorized", "Forbidden", "Unavailable"];
        all.extend_from_slice(errors);
        operation(
            &format!("{}.{action}", self.name),
            self.name,
            &format!("{summary} ({})", self.name),
            &all,
        )
    }

    fn one(&self, action: &str, summary: &str, errors: &[&str]) -> OperationBuilder {
        let mut all = vec!["BadRequest", "NotFound"];
        all.extend_from_slice(errors);
        self.op(action, summary, &all)
            .parameter(path_param("id", "Record id"))
    }

    fn record(&self, description: &str) -> utoipa::openapi::Response {
        let mut response = json_response(description, envelope(schema_ref(self.record), "Meta"));
        response.headers.insert("ETag".into(), etag_header());
        response
    }

    fn list(&self, def: &Compiled) -> Operation {
        let mut op = self.op("list", "List records", &["BadRequest"]);
        let mut params = vec![
            query_param(
                "filter",
                Type::String,
                "CEL expression over `record`, e.g. `record.status == \"open\"`",
            ),
            query_param(
                "sort",
                Type::String,
                "Comma-separated fields; `-field` sorts descending",
            ),
            query_param("page", Type::Integer, "Page number, from 1 (default 1)"),
            query_param(
                "per_page",
                Type::Integer,
                &format!("Page size, 1 to {MAX_PER_PAGE} (default 50)"),
            ),
        ];
        if def.def.soft_delete {
            params.push(query_param(
                "include_deleted",
                Type::Boolean,
                "Include soft-deleted records",
            ));
            params.push(query_param(
                "only_deleted",
                Type::Boolean,
                "Only soft-deleted records",
            ));
        }
        for field in &def.def.index {
            params.push(query_param(
                field,
                Type::String,
                "Only records whose field equals this value (indexed; any other field works too)",
            ));
        }
        for p in params {
            op = op.parameter(p);
        }
        let page = ArrayBuilder::new().items(schema_ref(self.record)).build();
        op.response(
            "200",
            json_response("A page of records", envelope(page, "ListMeta")),
        )
        .build()
    }

    fn create(&self) -> Operation {
        self.op(
            "create",
            "Create a record",
            &[
                "BadRequest",
                "Conflict",
                "TooLarge",
                "UnsupportedMediaType",
                "Unprocessable",
            ],
        )
        .request_body(json_body(
            schema_ref(self.name),
            "The record's fields; `id` is optional",
        ))
        .response("201", self.record("Created"))
        .build()
    }

    fn read(&self) -> Operation {
        self.one("get", "Read a record", &[])
            .parameter(query_param(
                "as_of",
                Type::Integer,
                "Read the record as it was at this log position",
            ))
            .response("200", self.record("The record"))
            .build()
    }

    fn write(&self, action: &str, summary: &str, body: RefOr<Schema>, what: &str) -> Operation {
        self.one(
            action,
            summary,
            &[
                "Conflict",
                "PreconditionFailed",
                "TooLarge",
                "UnsupportedMediaType",
                "Unprocessable",
            ],
        )
        .parameter(if_match())
        .request_body(json_body(body, what))
        .response("200", self.record("The updated record"))
        .build()
    }

    fn update(&self) -> Operation {
        let patch = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "JSON merge patch (RFC 7396): members set fields, null removes them",
            ));
        self.write(
            "update",
            "Change fields of a record",
            Schema::Object(patch.build()).into(),
            "The changes",
        )
    }

    fn replace(&self) -> Operation {
        self.write(
            "replace",
            "Replace a record's fields",
            schema_ref(self.name),
            "All of the record's fields",
        )
    }

    fn delete(&self, soft: bool) -> Operation {
        let summary = if soft {
            "Soft-delete a record (restore undoes it); ?purge=true removes it (SuperAdmin)"
        } else {
            "Delete a record"
        };
        self.one("delete", summary, &["Conflict", "PreconditionFailed"])
            .parameter(if_match())
            .parameter(query_param(
                "purge",
                Type::Boolean,
                "Remove for good (SuperAdmin)",
            ))
            .response(
                "200",
                self.record("The deleted record (data is null after a purge)"),
            )
            .build()
    }

    fn restore(&self) -> Operation {
        self.one(
            "restore",
            "Restore a soft-deleted record",
            &["Conflict", "PreconditionFailed"],
        )
        .parameter(if_match())
        .response("200", self.record("The restored record"))
        .build()
    }

    fn history(&self) -> Operation {
        let events = ArrayBuilder::new().items(schema_ref("AuditEvent")).build();
        self.one("history", "A record's audit events, newest first", &[])
            .parameter(query_param(
                "limit",
                Type::Integer,
                "Most events (default 100, at most 1000)",
            ))
            .response("200", json_response("Events", envelope(events, "Meta")))
            .build()
    }

    fn nested(
        &self,
        field: &str,
        action: &str,
        summary: &str,
        errors: &[&str],
    ) -> OperationBuilder {
        self.one(
            &format!("{field}.{action}"),
            &format!("{summary} `{field}`"),
            errors,
        )
    }

    fn nested_list(&self, field: &str, n: &NestedDef) -> OperationBuilder {
        let items = ArrayBuilder::new()
            .items(RefOr::T(raw_schema(&item_schema(n))))
            .build();
        self.nested(field, "list", "A page of the items of", &[])
            .parameter(query_param("page", Type::Integer, "Page number, from 1 (default 1)"))
            .parameter(query_param(
                "per_page",
                Type::Integer,
                "Items per page (default 50, at most 1000)",
            ))
            .parameter(query_param(
                "sort",
                Type::String,
                "Fields to sort by, comma-separated, `-` for descending (default: array order, oldest first)",
            ))
            .response(
                "200",
                json_response(
                    "The items, with meta.total, page and per_page",
                    envelope(items, "Meta"),
                ),
            )
    }

    fn nested_read(&self, field: &str, n: &NestedDef, id_param: &str) -> OperationBuilder {
        self.nested(field, "read", "One item of", &[])
            .parameter(path_param(id_param, "Item id"))
            .response(
                "200",
                json_response("The item", envelope(raw_schema(&item_schema(n)), "Meta")),
            )
    }

    fn nested_append(&self, field: &str, n: &NestedDef) -> OperationBuilder {
        self.nested(
            field,
            "append",
            "Append an item to",
            &[
                "Conflict",
                "TooLarge",
                "UnsupportedMediaType",
                "Unprocessable",
            ],
        )
        .request_body(json_body(
            raw_schema(&n.schema),
            "The item (its id is assigned)",
        ))
        .response(
            "201",
            json_response(
                "The new item",
                envelope(raw_schema(&item_schema(n)), "Meta"),
            ),
        )
    }

    fn nested_patch(&self, field: &str, id_param: &str) -> OperationBuilder {
        self.nested(
            field,
            "update",
            "Change an item of",
            &[
                "Conflict",
                "TooLarge",
                "UnsupportedMediaType",
                "Unprocessable",
            ],
        )
        .parameter(path_param(id_param, "Item id"))
        .request_body(json_body(
            Schema::Object(ObjectBuilder::new().schema_type(Type::Object).build()),
            "JSON merge patch of the item",
        ))
        .response(
            "200",
            json_response(
                "The changed item",
                envelope(
                    ObjectBuilder::new().schema_type(Type::Object).build(),
                    "Meta",
                ),
            ),
        )
    }

    fn nested_remove(&self, field: &str, id_param: &str) -> OperationBuilder {
        self.nested(field, "remove", "Remove an item of", &["Conflict"])
            .parameter(path_param(id_param, "Item id"))
            .response(
                "200",
                json_response(
                    "Removed (data is null)",
                    envelope(ObjectBuilder::new().build(), "Meta"),
                ),
            )
    }
}

/// The parent item's id of a sub-array route.
fn item_id() -> utoipa::openapi::path::Parameter {
    path_param("item_id", "Id of the item whose array this is")
}

fn with_item_id(op: OperationBuilder) -> Operation {
    op.parameter(item_id()).build()
}

fn if_match() -> utoipa::openapi::path::Parameter {
    header_param(
        "If-Match",
        "Only if the record is still at this version (its ETag, e.g. \"5\"); 412 otherwise",
    )
}

fn etag_header() -> Header {
    let mut header = Header::new(Schema::Object(
        ObjectBuilder::new().schema_type(Type::String).build(),
    ));
    header.description = Some("The record's version (`_version`), quoted".into());
    header
}
