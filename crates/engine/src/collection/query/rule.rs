//! Access rules as index lookups: which records a rule can let through, before any
//! record is read.
//!
//! A list for a role with an access rule (an owner, a staff member) used to decide the
//! rule on every record of the collection. Most rules say who may see a record through
//! an indexed field: `record.property_id in auth.properties`,
//! `record.assigned_to == auth.uuid`. With the caller's variables bound (`auth`), the
//! parts of the rule that do not read `record` are constants, and what is left names
//! the index entries a visible record must be under.
//!
//! The rule is read as CEL reads it: a disjunction (`||`) of alternatives, each a
//! conjunction (`&&`). A conjunct that does not mention `record` is evaluated once:
//! `false` drops its alternative (`false && x` is false whatever `x` is), `true` is
//! dropped from it, anything else (an error, a non-bool) leaves the alternative open. An
//! alternative left with no conjunct is true for every record, and so is the rule
//! (`true || x` is true whatever `x` is): nothing needs checking. Otherwise each open
//! alternative must contain `record.f == v` or `record.f in [v, ...]` on an indexed
//! field, with `v` a string, bool or null once evaluated: a record it lets through holds
//! exactly one of those values, so it is under that index entry. The union of those
//! entries bounds the candidates; the rule itself is still decided on each of them,
//! unless in every alternative that conjunct (with `has(record.f)` at most) is all that
//! was left open: then a record under an entry passes, and the entries are the answer.
//! When some alternative has no such conjunct, the rule is decided on every record as
//! before.

use cel::common::ast::operators::{IN, LOGICAL_OR};

use super::*;

/// What a rule can let through, with the caller's variables bound.
pub(super) enum Reach<'a> {
    /// Every record: no per-record check is needed.
    All,
    /// No record.
    Nothing,
    /// Exactly the records under one of these index entries: no per-record check.
    Exactly(Vec<&'a Ids>),
    /// Only records under one of these index entries (then checked one by one).
    Within(Vec<&'a Ids>),
    /// Any record: each is checked.
    Unknown,
}

impl<'a> Reach<'a> {
    pub(super) fn of(
        rule: &Expr,
        vars: &[(&str, &Value)],
        def: &Compiled,
        coll: &'a CollectionState,
    ) -> Reach<'a> {
        // A variable that may stand for `record` makes "does not mention record" unsound.
        if vars
            .iter()
            .any(|(name, _)| name.trim_start_matches('.').starts_with("record"))
        {
            return Reach::Unknown;
        }
        let mut scope = Vars::new();
        for (name, value) in vars {
            scope = scope.with(name, value);
        }
        let mut alternatives = Vec::new();
        disjuncts(rule.root(), &mut alternatives);
        let mut within: Vec<&'a Ids> = Vec::new();
        let mut exact = true;
        for alternative in alternatives {
            let mut leaves = Vec::new();
            conjuncts(alternative, &mut leaves);
            let mut open = Vec::new();
            let mut impossible = false;
            for leaf in leaves {
                if mentions_record(leaf) {
                    open.push(leaf);
                    continue;
                }
                match rule.eval_node(leaf, &scope) {
                    Ok(Value::Bool(true)) => {}
                    Ok(Value::Bool(false)) => {
                        impossible = true;
                        break;
                    }
                    _ => open.push(leaf),
                }
            }
            if impossible {
                continue;
            }
            if open.is_empty() {
                return Reach::All;
            }
            let Some((field, entries)) = open
                .iter()
                .find_map(|leaf| index_entries(rule, leaf, &scope, def, coll))
            else {
                return Reach::Unknown;
            };
            // A record under an entry holds the value, so the conjunct (and `has` of its
            // field) is true there: if nothing else is open, the alternative is too.
            let others = open.len() - 1;
            exact &= open.iter().filter(|leaf| is_has(leaf, &field)).count() == others;
            within.extend(entries);
        }
        match (within.is_empty(), exact) {
            (true, _) => Reach::Nothing,
            (false, true) => Reach::Exactly(within),
            (false, false) => Reach::Within(within),
        }
    }
}

/// The operands of the top-level `||`s.
fn disjuncts<'e>(node: &'e IdedExpr, out: &mut Vec<&'e IdedExpr>) {
    match &node.expr {
        Node::Call(call) if call.target.is_none() && call.func_name == LOGICAL_OR => {
            call.args.iter().for_each(|arg| disjuncts(arg, out));
        }
        _ => out.push(node),
    }
}

/// Does `record` (or a name that could resolve to it) appear anywhere in `node`?
fn mentions_record(node: &IdedExpr) -> bool {
    // `record_fields` is `None` when `record` appears other than as `record.field`, and
    // otherwise lists those fields: either way, empty means not at all.
    record_fields(node).is_none_or(|fields| !fields.is_empty())
}

/// `has(record.<field>)`?
fn is_has(leaf: &IdedExpr, field: &str) -> bool {
    matches!(&leaf.expr, Node::Select(select)
        if select.test && is_record(&select.operand) && select.field == field)
}

/// For `record.f == v` / `v == record.f` / `record.f in list` on an indexed field `f`
/// (with `v` and the list's elements strings, bools or nulls once evaluated): `f` and the
/// index entries of those values. A record holds one of the values exactly when it is
/// under one of the entries (the index keys canonical JSON).
fn index_entries<'a>(
    rule: &Expr,
    leaf: &IdedExpr,
    scope: &Vars<'_>,
    def: &Compiled,
    coll: &'a CollectionState,
) -> Option<(String, Vec<&'a Ids>)> {
    let Node::Call(call) = &leaf.expr else {
        return None;
    };
    let [a, b] = call.args.as_slice() else {
        return None;
    };
    if call.target.is_some() {
        return None;
    }
    let (field, values) = match call.func_name.as_str() {
        EQUALS => {
            let (field, other) = match (record_field(a), record_field(b)) {
                (Some(field), None) => (field, b),
                (None, Some(field)) => (field, a),
                _ => return None,
            };
            if mentions_record(other) {
                return None;
            }
            (field, vec![rule.eval_node(other, scope).ok()?])
        }
        IN => {
            let field = record_field(a)?;
            if mentions_record(b) {
                return None;
            }
            let Value::Array(values) = rule.eval_node(b, scope).ok()? else {
                return None;
            };
            (field, values)
        }
        _ => return None,
    };
    if !def.def.index.contains(&field)
        || !values
            .iter()
            .all(|v| matches!(v, Value::String(_) | Value::Bool(_) | Value::Null))
    {
        return None;
    }
    let index = coll.indexes.fields.get(&field)?;
    let entries = values
        .iter()
        .filter_map(|v| index.get(&SortKey::of(Some(v))))
        .collect();
    Some((field, entries))
}
