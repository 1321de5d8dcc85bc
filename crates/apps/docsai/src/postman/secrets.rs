//! Which values of an imported collection are credentials: passwords, tokens, API key
//! values, OAuth secrets, signing keys, and variables of type `secret`. The import
//! stores them in secret fields (encrypted at rest, never listed or audited in clear),
//! so this module names them by JSON Pointer (RFC 6901) into [`Imported::to_json`].
//!
//! The choice is by auth type and parameter name, following the Postman v2.1 schema's
//! auth types. An auth type this list does not know is treated as all secret: a new
//! kind of credential must not end up in clear because nobody listed it.

use serde_json::Value;

use super::record::Imported;

/// The parameters that hold credentials, per known auth type.
pub fn secret_params(auth_type: &str) -> Option<&'static [&'static str]> {
    Some(match auth_type {
        "noauth" => &[],
        "basic" | "digest" | "ntlm" => &["password"],
        "bearer" => &["token"],
        "apikey" => &["value"],
        "oauth1" => &["consumerSecret", "token", "tokenSecret", "privateKey"],
        "oauth2" => &[
            "accessToken",
            "refreshToken",
            "clientSecret",
            "password",
            "idToken",
        ],
        "awsv4" => &["secretKey", "sessionToken"],
        "hawk" => &["authKey"],
        "edgegrid" | "akamai" => &["accessToken", "clientToken", "clientSecret"],
        "jwt" => &["secret", "privateKey"],
        "asap" => &["privateKey"],
        _ => return None,
    })
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Pointers to the credential values of an auth block at `at` (v2.1 shape).
fn auth_paths(auth: Option<&Value>, at: &str, out: &mut Vec<String>) {
    let Some(auth) = auth else { return };
    let Some(kind) = auth.get("type").and_then(Value::as_str) else {
        return;
    };
    let Some(params) = auth.get(kind).and_then(Value::as_array) else {
        return;
    };
    let secret = secret_params(kind);
    for (i, p) in params.iter().enumerate() {
        let key = p.get("key").and_then(Value::as_str).unwrap_or_default();
        let is_secret = secret.is_none_or(|names| names.contains(&key));
        let has_value = p.get("value").is_some_and(|v| !v.is_null() && v != "");
        if is_secret && has_value {
            out.push(format!("{at}/{}/{i}/value", escape(kind)));
        }
    }
}

/// Pointers to the values of variables of type `secret`.
fn variable_paths(vars: Option<&Value>, at: &str, out: &mut Vec<String>) {
    for (i, v) in vars
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if v.get("type").and_then(Value::as_str) == Some("secret") && v.get("value").is_some() {
            out.push(format!("{at}/{i}/value"));
        }
    }
}

fn request_paths(req: &Value, at: &str, out: &mut Vec<String>) {
    auth_paths(req.get("auth"), &format!("{at}/auth"), out);
}

/// Every credential in an import, as JSON Pointers into [`Imported::to_json`]: the
/// collection's, folders', requests' and saved responses' auth blocks, and secret
/// variables of the collection, folders and requests.
pub fn credential_paths(imported: &Imported) -> Vec<String> {
    let mut out = Vec::new();
    let r = &imported.record;
    auth_paths(r.get("auth"), "/record/auth", &mut out);
    variable_paths(r.get("variables"), "/record/variables", &mut out);
    for (i, f) in r
        .get("folders")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        auth_paths(
            f.get("auth"),
            &format!("/record/folders/{i}/auth"),
            &mut out,
        );
        variable_paths(
            f.get("variables"),
            &format!("/record/folders/{i}/variables"),
            &mut out,
        );
    }
    for (i, q) in imported.requests.iter().enumerate() {
        request_paths(q, &format!("/requests/{i}"), &mut out);
        variable_paths(
            q.get("variables"),
            &format!("/requests/{i}/variables"),
            &mut out,
        );
    }
    for (i, m) in imported.mocks.iter().enumerate() {
        if let Some(orig) = m.get("original_request") {
            request_paths(orig, &format!("/mocks/{i}/original_request"), &mut out);
        }
    }
    out
}
