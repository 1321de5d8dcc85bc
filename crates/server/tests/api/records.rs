//! Records through the API: envelope, status codes, ETags, soft delete, history; bad input.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn record_lifecycle_over_http() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;

    let (s, created, h) = app
        .call(
            Method::POST,
            "/api/v1/notes",
            Some(&admin),
            Some(json!({"title": "First", "topic": "a"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["success"], true);
    assert!(created["meta"]["request_id"].is_string());
    assert!(h.get("x-request-id").is_some());
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let etag = h.get("etag").unwrap().to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", created["data"]["_version"]));

    let (s, got, h) = app
        .call(
            Method::GET,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, got["data"]["title"].as_str()), (200, Some("First")));
    assert_eq!(h.get("etag").unwrap().to_str().unwrap(), etag);

    // A stale If-Match is refused with 412.
    let ok = app
        .client
        .patch(app.at(&format!("/api/v1/notes/{id}")))
        .bearer_auth(&admin)
        .header("if-match", &etag)
        .json(&json!({"topic": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let stale = app
        .client
        .patch(app.at(&format!("/api/v1/notes/{id}")))
        .bearer_auth(&admin)
        .header("if-match", &etag)
        .json(&json!({"topic": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "version_conflict");

    // Unique violation is a 409 naming the constraint.
    let (s, dup, _) = app
        .call(
            Method::POST,
            "/api/v1/notes",
            Some(&admin),
            Some(json!({"title": "First"})),
        )
        .await;
    assert_eq!(
        (s, dup["error"]["code"].as_str()),
        (409, Some("unique_violation"))
    );
    assert_eq!(dup["error"]["details"]["constraint"], "note_title");

    // Soft delete hides it from lists; restore brings it back; history shows it all.
    let (s, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (_, list, _) = app
        .call(Method::GET, "/api/v1/notes", Some(&admin), None)
        .await;
    assert_eq!(list["meta"]["total"], 0);
    let (_, list, _) = app
        .call(
            Method::GET,
            "/api/v1/notes?only_deleted=true",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(list["meta"]["total"], 1);
    let (s, _, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/notes/{id}/restore"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (_, hist, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/notes/{id}/history"),
            Some(&admin),
            None,
        )
        .await;
    let actions: Vec<&str> = hist["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["restore", "delete", "update", "create"]);

    // Filters, sort and pages.
    for t in ["B", "C", "D"] {
        app.call(
            Method::POST,
            "/api/v1/notes",
            Some(&admin),
            Some(json!({"title": t, "topic": "z"})),
        )
        .await;
    }
    let (_, list, _) = app
        .call(
            Method::GET,
            "/api/v1/notes?topic=z&sort=-title&per_page=2",
            Some(&admin),
            None,
        )
        .await;
    let titles: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        (titles, list["meta"]["total"].as_u64()),
        (vec!["D", "C"], Some(3))
    );
    let (_, list, _) = app.call(Method::GET, "/api/v1/notes?filter=record.title%20%3E%3D%20%22C%22%20%26%26%20record.topic%20%3D%3D%20%22z%22", Some(&admin), None).await;
    assert_eq!(list["meta"]["total"], 2);

    // Purge is SuperAdmin-only and final.
    let (s, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/notes/{id}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = app
        .call(
            Method::GET,
            &format!("/api/v1/notes/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 404);

    // Audit: query and verify.
    let (s, audit, _) = app
        .call(
            Method::GET,
            "/api/v1/audit?collection=notes&limit=3",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((s, audit["data"].as_array().unwrap().len()), (200, 3));
    let (_, verify, _) = app
        .call(Method::GET, "/api/v1/audit/verify", Some(&admin), None)
        .await;
    assert_eq!(verify["data"]["intact"], true);
}

#[tokio::test]
async fn bad_input_answers_4xx_envelopes_never_500() {
    let app = spawn_with(
        bucketbase_server::ServerSettings {
            cookie_secure: false,
            body_limit: 64 * 1024,
            ..Default::default()
        },
        None,
    )
    .await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let send =
        |req: reqwest::RequestBuilder| async { req.bearer_auth(&admin).send().await.unwrap() };
    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        (
            "malformed JSON",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .header("content-type", "application/json")
                    .body("{\"title\": "),
            )
            .await,
            400,
            "bad_request",
        ),
        (
            "wrong content type",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .header("content-type", "text/plain")
                    .body("title=x"),
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            "oversized body",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .json(&json!({"title": "x".repeat(100_000)})),
            )
            .await,
            413,
            "too_large",
        ),
        (
            "unknown collection",
            send(app.client.get(app.at("/api/v1/nope"))).await,
            404,
            "not_found",
        ),
        (
            "invalid id",
            send(app.client.get(app.at("/api/v1/notes/..%2Fetc"))).await,
            400,
            "bad_request",
        ),
        (
            "schema violation",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .json(&json!({"title": ""})),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "not an object",
            send(
                app.client
                    .post(app.at("/api/v1/notes"))
                    .json(&json!([1, 2])),
            )
            .await,
            422,
            "validation_failed",
        ),
        (
            "bad If-Match",
            send(
                app.client
                    .patch(app.at("/api/v1/notes/x"))
                    .header("if-match", "soon")
                    .json(&json!({})),
            )
            .await,
            400,
            "bad_request",
        ),
        (
            "bad filter",
            send(app.client.get(app.at("/api/v1/notes?filter=record.%3E"))).await,
            400,
            "invalid_filter",
        ),
        (
            "bad page",
            send(app.client.get(app.at("/api/v1/notes?per_page=100000"))).await,
            400,
            "bad_request",
        ),
        (
            "unknown route",
            send(app.client.get(app.at("/nothing/here"))).await,
            404,
            "not_found",
        ),
        (
            "wrong method",
            send(app.client.put(app.at("/api/v1/notes"))).await,
            405,
            "method_not_allowed",
        ),
        (
            "bad definition",
            send(
                app.client
                    .post(app.at("/api/v1/collections"))
                    .json(&json!({"name": "x", "check": [{"name": "c", "expr": "record.a >"}]})),
            )
            .await,
            422,
            "invalid_definition",
        ),
    ];
    for (what, response, status, code) in cases {
        assert_eq!(response.status().as_u16(), status, "{what}");
        let request_id = response
            .headers()
            .get("x-request-id")
            .expect(what)
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            response.headers().get("x-content-type-options").unwrap(),
            "nosniff",
            "{what}"
        );
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|_| panic!("{what}: not JSON"));
        assert_eq!(body["success"], false, "{what}");
        assert_eq!(
            body["meta"]["request_id"],
            request_id.as_str(),
            "{what}: the id is in the envelope too"
        );
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
    }
}

/// A caller's uuid, from `/api/auth/me`.
async fn uuid_of(app: &TestApp, token: &str) -> String {
    let (s, me, _) = app
        .call(Method::GET, "/api/auth/me", Some(token), None)
        .await;
    assert_eq!(s, 200, "{me}");
    me["data"]["uuid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn system_fields_are_written_by_app_code_only() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(
        &admin,
        json!({
            "name": "uploads",
            "schema": {"type": "object", "required": ["title"], "properties": {
                "title": {"type": "string"}, "blob": {"type": "string"}}},
            "system_fields": ["blob"]
        }),
    )
    .await;

    // Nobody sets a system field through the API, not even the SuperAdmin.
    let (s, b, _) = app
        .call(
            Method::POST,
            "/api/v1/uploads",
            Some(&admin),
            Some(json!({"title": "a", "blob": "_files/forged"})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("read_only_field")),
        "{b}"
    );
    assert_eq!(b["success"], false);
    assert_eq!(b["error"]["details"]["fields"], json!(["blob"]));
    assert!(b["meta"]["request_id"].is_string());
    let (s, b, _) = app
        .call(
            Method::POST,
            "/api/v1/uploads",
            Some(&admin),
            Some(json!({"title": "a"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let id = b["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/uploads/{id}");

    // App code writes it through the engine.
    let (c, rid) = (
        bucketbase_engine::CollectionName::parse("uploads").unwrap(),
        bucketbase_engine::RecordId::parse(&id).unwrap(),
    );
    app.db
        .transact(&bucketbase_engine::TxnMeta::new("app", "upload"), |tx| {
            tx.update(&c, &rid, &json!({"blob": "_files/real"}), None)
        })
        .await
        .unwrap();

    // Changing or clearing it is refused, by PATCH and PUT alike.
    for (method, body) in [
        (Method::PATCH, json!({"blob": "_files/other"})),
        (Method::PATCH, json!({"blob": null})),
        (Method::PUT, json!({"title": "a", "blob": "_files/other"})),
        (Method::PUT, json!({"title": "a", "blob": null})),
    ] {
        let (s, b, _) = app
            .call(method.clone(), &path, Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("read_only_field")),
            "{method} {body}: {b}"
        );
    }

    // Echoing the record back, or leaving the field out of a PUT, is fine.
    let (_, got, _) = app.call(Method::GET, &path, Some(&admin), None).await;
    let mut echo = got["data"].clone();
    echo["title"] = json!("b");
    let (s, b, _) = app
        .call(Method::PUT, &path, Some(&admin), Some(echo.clone()))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b, _) = app
        .call(Method::PATCH, &path, Some(&admin), Some(echo))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b, _) = app
        .call(
            Method::PUT,
            &path,
            Some(&admin),
            Some(json!({"title": "c"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["data"]["title"].as_str(), b["data"]["blob"].as_str()),
        (Some("c"), Some("_files/real"))
    );

    // A definition cannot give a system field a default (every create would set it).
    let (s, b, _) = app
        .call(
            Method::POST,
            "/api/v1/collections",
            Some(&admin),
            Some(json!({"name": "bad_uploads", "system_fields": ["blob"],
                "schema": {"type": "object", "properties": {"blob": {"type": "string", "default": "x"}}}})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (422, Some("invalid_definition")),
        "{b}"
    );
}

#[tokio::test]
async fn references_point_only_at_records_the_writer_may_see() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (ann, bob) = (
        app.user("ann@example.com", "member").await,
        app.user("bob@example.com", "member").await,
    );
    let (ann_id, bob_id) = (uuid_of(&app, &ann).await, uuid_of(&app, &bob).await);
    let own = "record.owner == auth.uuid";
    app.define(
        &admin,
        json!({"name": "projects", "soft_delete": true,
            "schema": {"type": "object", "properties": {"name": {"type": "string"}, "owner": {"type": "string"}}},
            "rules": {"list": own, "view": own, "create": own, "update": own}}),
    )
    .await;
    let mine = "record.created_by == auth.uuid";
    app.define(
        &admin,
        json!({"name": "tickets",
            "schema": {"type": "object", "required": ["title", "project_id"], "properties": {
                "title": {"type": "string"}, "project_id": {"type": "string"}}},
            "references": [{"field": "project_id", "collection": "projects"}],
            "rules": {"list": mine, "view": mine, "create": "auth.role == \"member\"", "update": mine}}),
    )
    .await;
    let project = |token: String, owner: String| {
        let app = &app;
        async move {
            let (s, b, _) = app
                .call(
                    Method::POST,
                    "/api/v1/projects",
                    Some(&token),
                    Some(json!({"owner": owner})),
                )
                .await;
            assert_eq!(s, 201, "{b}");
            b["data"]["id"].as_str().unwrap().to_string()
        }
    };
    let anns = project(ann.clone(), ann_id).await;
    let bobs = project(bob.clone(), bob_id).await;
    let nowhere = "0190a0a0-0000-7000-8000-000000000000";

    // Pointing at bob's project answers exactly as pointing at no project at all.
    let ticket = |project: &str| json!({"title": "t", "project_id": project});
    let (s1, hidden, _) = app
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(&ann),
            Some(ticket(&bobs)),
        )
        .await;
    let (s2, missing, _) = app
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(&ann),
            Some(ticket(nowhere)),
        )
        .await;
    assert_eq!((s1, s2), (409, 409), "{hidden} {missing}");
    assert_eq!(hidden["error"]["code"], "reference_violation");
    assert_eq!(hidden["error"]["code"], missing["error"]["code"]);
    assert_eq!(
        hidden["error"]["details"]["fields"],
        missing["error"]["details"]["fields"]
    );
    assert_eq!(
        hidden["error"]["details"]["constraint"],
        missing["error"]["details"]["constraint"]
    );
    let shape = |m: &Value, target: &str| {
        // "record <new id>: project_id points at projects/<target>, which does not exist"
        let m = m["error"]["message"].as_str().unwrap().to_string();
        let (_, rest) = m.split_once(": project_id").unwrap();
        rest.replace(target, "<target>")
    };
    assert_eq!(shape(&hidden, &bobs), shape(&missing, nowhere));

    // Her own project is fine; moving the ticket to bob's is refused the same way.
    let (s, b, _) = app
        .call(
            Method::POST,
            "/api/v1/tickets",
            Some(&ann),
            Some(ticket(&anns)),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let path = format!("/api/v1/tickets/{}", b["data"]["id"].as_str().unwrap());
    let (s, b, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&ann),
            Some(json!({"project_id": bobs})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("reference_violation")),
        "{b}"
    );
    let (s, b, _) = app
        .call(Method::PUT, &path, Some(&ann), Some(ticket(&bobs)))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("reference_violation")),
        "{b}"
    );

    // The SuperAdmin may point it anywhere; an edit that leaves the reference as it is
    // is not judged by it.
    let (s, b, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"project_id": bobs})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&ann),
            Some(json!({"title": "renamed"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

/// One meaning for a flag on every route (decision 0015): empty or `yes` is true, `no` is
/// false, anything else is a 400 in the envelope; `purge` parses like the list flags.
#[tokio::test]
async fn flags_have_one_meaning() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.define(&admin, notes_definition()).await;
    let mut ids = Vec::new();
    for title in ["kept", "deleted", "purged"] {
        let (s, created, _) = app
            .call(
                Method::POST,
                "/api/v1/notes",
                Some(&admin),
                Some(json!({"title": title})),
            )
            .await;
        assert_eq!(s, 201, "{created}");
        ids.push(created["data"]["id"].as_str().unwrap().to_string());
    }
    let (s, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/notes/{}", ids[1]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let total = |body: &Value| body["meta"]["total"].as_u64();
    // Two live records and one soft-deleted.
    for (query, expected) in [
        ("include_deleted=", 3),
        ("include_deleted", 3),
        ("include_deleted=yes", 3),
        ("include_deleted=no", 2),
        ("only_deleted=on", 1),
        ("only_deleted=off", 2),
    ] {
        let (s, list, _) = app
            .call(
                Method::GET,
                &format!("/api/v1/notes?{query}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(s, 200, "{query}: {list}");
        assert_eq!(total(&list), Some(expected), "{query}: {list}");
    }
    for query in [
        "/api/v1/notes?include_deleted=maybe".to_string(),
        format!("/api/v1/notes/{}?purge=maybe", ids[0]),
    ] {
        let method = if query.contains("purge") {
            Method::DELETE
        } else {
            Method::GET
        };
        let (s, body, _) = app.call(method, &query, Some(&admin), None).await;
        assert_eq!(s, 400, "{query}: {body}");
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        assert!(body["meta"]["request_id"].is_string(), "{body}");
    }
    // `?purge=` purges (it used to be refused as not a boolean).
    let (s, body, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/notes/{}?purge=", ids[2]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (_, list, _) = app
        .call(
            Method::GET,
            "/api/v1/notes?include_deleted=true",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(total(&list), Some(2), "{list}");
}

/// A caller no rule binds gets a record straight from its stored text (`shown`), a
/// caller whose rule reads the record through a `Value`: the same bytes either way.
#[tokio::test]
async fn a_read_answers_the_same_bytes_whether_or_not_a_rule_reads_the_record() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let staff = app.user("staff@example.com", "staff").await;
    app.define(
        &admin,
        json!({"name": "things", "rules": {"view": "auth.role == 'staff' || record.n == 1"}}),
    )
    .await;
    let bodies = [
        json!({"title": "plain"}),
        json!({"title": "a \"quoted\" {brace}, [bracket] \\ \n\t é 😀", "A": 1, "_a": [], "z": {}}),
        json!({"n": 1.5, "m": -0.25, "big": 1e300, "tiny": 5e-324, "sum": 0.30000000000000004,
               "u": 18446744073709551615u64, "i": -9223372036854775808i64}),
        json!({"deep": {"_version": 1, "list": [{"b": "}", "a": [1, "]"]}, null, true]}}),
    ];
    for body in bodies {
        let (s, created, _) = app
            .call(Method::POST, "/api/v1/things", Some(&admin), Some(body))
            .await;
        assert_eq!(s, 201, "{created}");
        let path = format!("/api/v1/things/{}", created["data"]["id"].as_str().unwrap());
        let answer = |token: String| {
            let req = app
                .client
                .get(app.at(&path))
                .bearer_auth(token)
                .header("x-request-id", "same-request");
            async move {
                let r = req.send().await.unwrap();
                let etag = r.headers().get("etag").cloned();
                (r.status().as_u16(), etag, r.bytes().await.unwrap())
            }
        };
        let (from_text, from_value) = (answer(admin.clone()).await, answer(staff.clone()).await);
        assert_eq!(from_text.0, 200);
        assert_eq!(from_text, from_value, "{path}");
        let shown: Value = serde_json::from_slice(&from_text.2).unwrap();
        assert_eq!(shown["data"]["_version"], created["data"]["_version"]);
    }
}
