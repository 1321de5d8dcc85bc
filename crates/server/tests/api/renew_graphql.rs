//! docsai's identity: the `graphql` provider with the `appointment360` preset against the
//! fake appointment360 service, and refresh on any request with a provider that rotates
//! its refresh tokens remotely.

use std::sync::Arc;

use bucketbase_server::auth::graphql::{GraphqlConfig, GraphqlProvider};
use bucketbase_server::auth::graphql_preset;
use futures::future::join_all;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::fake_identity::{FakeIdentity, FakeUser, spawn_fake_identity};
use crate::renew::{Cookies, logged_in, send};
use crate::support::*;

const ROOT: (&str, &str) = ("root@contact360.test", "pw-root");
const STAFF: (&str, &str) = ("ann@contact360.test", "pw-ann");

/// A server with docsai's identity configuration against a fresh fake service.
async fn docsai_identity() -> (FakeIdentity, TestApp) {
    let idp = spawn_fake_identity(vec![
        FakeUser::new("uuid-root", ROOT.0, ROOT.1, "SuperAdmin"),
        FakeUser::new("uuid-ann", STAFF.0, STAFF.1, "staff"),
    ])
    .await;
    let mut keys = graphql_preset::preset("appointment360").unwrap();
    keys.insert("endpoint".into(), idp.url().into());
    let config = GraphqlConfig::deserialize(Value::Object(keys)).unwrap();
    let provider = Arc::new(GraphqlProvider::new(config).unwrap());
    let settings = bucketbase_server::ServerSettings {
        cookie_secure: false,
        require_role: Some("SuperAdmin".into()),
        ..Default::default()
    };
    let app = spawn_with(settings, Some(provider)).await;
    (idp, app)
}

/// Cookies whose access token the service no longer honours (as when it expired).
fn with_dead_access(idp: &FakeIdentity, c: &Cookies) -> Cookies {
    let dead = idp.issue_token(ROOT.0);
    idp.revoke(&dead);
    Cookies {
        access: dead,
        ..c.clone()
    }
}

#[tokio::test]
async fn login_through_appointment360_with_the_docsai_configuration() {
    let (idp, app) = docsai_identity().await;
    let r = app.login(ROOT.0, ROOT.1).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["user"]["uuid"], "uuid-root");
    assert_eq!(
        body["data"]["user"]["role"], "SuperAdmin",
        "read at profile.role"
    );
    let access = body["data"]["access_token"].as_str().unwrap();
    let (s, me, _) = app
        .call(Method::GET, "/api/auth/me", Some(access), None)
        .await;
    assert_eq!((s, me["data"]["email"].as_str()), (200, Some(ROOT.0)));
    assert_eq!(
        idp.calls(),
        0,
        "login's user was cached; no me query needed"
    );
    // docsai is SuperAdmin-only: the preset refuses other roles at login already.
    let r = app.login(STAFF.0, STAFF.1).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_dead_access_cookie_is_refreshed_through_the_service_for_api_and_admin() {
    let (idp, app) = docsai_identity().await;
    let c = logged_in(&app, ROOT.0, ROOT.1).await;
    let c = with_dead_access(&idp, &c);
    let a = send(&app, Method::GET, "/api/v1/collections", &c, &[], None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let refresh = a.cookie("refresh_token").expect("new refresh cookie");
    assert!(
        refresh.contains("Path=/;") && refresh.contains("HttpOnly"),
        "{refresh}"
    );
    assert_eq!(idp.refreshes(), 1);
    // The same on an admin page, with the rotated cookie.
    let c = with_dead_access(
        &idp,
        &Cookies {
            refresh: a.cookie_value("refresh_token").unwrap(),
            ..c
        },
    );
    let a = send(&app, Method::GET, "/admin/", &c, &[], None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains(ROOT.0), "the page is the refreshed user's");
    assert!(a.cookie("access_token").is_some());
    assert_eq!(idp.refreshes(), 2);
    // A refresh cookie the service refuses: the admin asks to sign in again.
    let c = Cookies {
        refresh: "spent".into(),
        ..with_dead_access(&idp, &c)
    };
    let a = send(&app, Method::GET, "/admin/", &c, &[], None).await;
    assert_eq!(a.status, 303);
    let a = send(&app, Method::GET, "/api/v1/collections", &c, &[], None).await;
    assert_eq!(a.status, 401);
}

#[tokio::test]
async fn parallel_requests_make_one_rotation_at_the_service() {
    let (idp, app) = docsai_identity().await;
    let c = logged_in(&app, ROOT.0, ROOT.1).await;
    let c = with_dead_access(&idp, &c);
    let answers =
        join_all((0..6).map(|_| send(&app, Method::GET, "/api/auth/me", &c, &[], None))).await;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.body);
    }
    assert_eq!(idp.refreshes(), 1, "the old token was exchanged once");
    let mut tokens: Vec<String> = answers
        .iter()
        .map(|a| a.cookie_value("refresh_token").unwrap())
        .collect();
    tokens.dedup();
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn an_outage_during_renewal_is_503_not_a_logout() {
    let (idp, app) = docsai_identity().await;
    let c = logged_in(&app, ROOT.0, ROOT.1).await;
    let c = with_dead_access(&idp, &c);
    idp.set_down(true);
    let a = send(&app, Method::GET, "/api/v1/collections", &c, &[], None).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.json()["error"]["code"], "auth_unavailable");
    assert!(a.set_cookies.is_empty(), "nothing cleared");
    // Back up: the same cookies work, nothing was lost.
    idp.set_down(false);
    let a = send(&app, Method::GET, "/api/v1/collections", &c, &[], None).await;
    assert_eq!(a.status, 200, "{}", a.body);
}
