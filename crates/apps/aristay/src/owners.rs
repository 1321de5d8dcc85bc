//! What aristay adds to `auth` for its rules: `auth.properties`, the ids of the live
//! properties the caller owns through live `property_ownerships` (empty for other roles).

use bucketbase_engine::State;
use bucketbase_engine::collection::keys::is_live;
use bucketbase_server::access::AuthContext;
use bucketbase_server::auth::Principal;
use serde_json::{Map, Value, json};

use crate::coll;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnedProperties;

/// The role that reads only its own properties.
pub const OWNER: &str = "owner";

impl AuthContext for OwnedProperties {
    fn extend(&self, principal: &Principal, state: &State, auth: &mut Map<String, Value>) {
        let owned = if principal.role == OWNER {
            owned_properties(state, &principal.uuid)
        } else {
            Vec::new()
        };
        auth.insert("properties".into(), json!(owned));
    }
}

/// Property ids owned by `user`, from the `user_id` index (no scan).
pub fn owned_properties(state: &State, user: &str) -> Vec<String> {
    let (ownerships, properties) = (coll("property_ownerships"), coll("properties"));
    let mut out: Vec<String> = state
        .find_live(&ownerships, "user_id", &json!(user))
        .into_iter()
        .filter_map(|(_, o)| {
            o.get("property_id")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .filter(|p| {
            bucketbase_engine::RecordId::parse(p)
                .ok()
                .and_then(|id| state.get(&properties, &id))
                .is_some_and(|d| is_live(&d.value()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
