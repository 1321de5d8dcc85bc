//! CEL expressions embedded in collection definitions.
//!
//! This module owns compiling and evaluating the small expressions that
//! operators write into collection definitions: `check` constraints over a
//! record (`record.price >= 0`), access rules over `auth` and `record`
//! (`auth.role == "SuperAdmin" || record.created_by == auth.uuid`), and
//! conditions or list filters (`record.nights >= 3 && record.source == "airbnb"`).
//!
//! # Why CEL
//!
//! Definitions are data, edited by operators and stored next to the records,
//! so the language must be safe to run on a shared server: CEL (the Common
//! Expression Language, used by Kubernetes and Firebase rules) has no loops,
//! no recursion, no I/O and no side effects. It is not Turing-complete: an
//! expression always terminates, and its cost is bounded by its size and the
//! size of its inputs. On top of that this module caps the source at
//! [`MAX_SOURCE_LEN`] characters and the syntax tree at [`MAX_DEPTH`] levels
//! (`cel` recurses while evaluating; its parser stops at 96 levels of
//! brackets), and comprehension macros (`all`, `exists`, `exists_one`, `map`,
//! `filter`) may only be nested [`MAX_COMPREHENSION_NESTING`] deep, so an
//! expression cannot iterate over the product of many lists.
//!
//! Unoptimised builds of `cel`'s generated parser use ~180 KiB of stack per
//! bracket level, so about a dozen nested brackets overflow a 2 MiB test
//! thread in debug builds; optimise `cel` and `antlr4rust` in the dev profile
//! (`[profile.dev.package.cel] opt-level = 2`, same for `antlr4rust`) if
//! untrusted filters reach debug builds. Release builds are unaffected.
//!
//! # Variables and JSON
//!
//! Variables are JSON values bound by name with [`Vars`]. `null`, booleans,
//! strings, arrays (lists) and objects (maps with string keys) map directly;
//! integers become `int` when they fit in an `i64`, else `uint`, and other
//! numbers become `double`. CEL compares `int`, `uint` and `double` with each
//! other (`record.price >= 0` works for `10` and `10.5`) but does not mix them
//! in arithmetic (`1 + 1.5` is an error). Strings compare by code point, so
//! ISO-8601 dates compare chronologically. A variable is converted only when
//! the expression uses it, at most once per [`Vars`], borrowing its strings.
//!
//! # Errors, `has()` and `null`
//!
//! Selecting a field a map lacks (`record.discount` on a record without it) is
//! an evaluation error, not `false`: guard optional fields with `has()`, as in
//! `!has(record.discount) || record.discount <= record.price`. `has()` tests
//! whether the key is present, so a field holding JSON `null` *is* present;
//! comparing `null` with a number is an error too, so write
//! `record.discount == null` into the guard where `null` is allowed.
//! [`Expr::eval_bool`] reports every such error; the caller decides whether a
//! failing check rejects the write or a failing filter skips the record. Errors
//! that come from the data rather than the expression (a missing field or key,
//! a value of a type the expression does not handle: `null > 1`, `1.5 + 1`, an
//! index out of range) are [`ExprError::Mismatch`]; the others (division by
//! zero, overflow, an invalid argument such as a bad regex, an unknown
//! variable) are [`ExprError::Eval`]. List filters skip a record on the first
//! kind and refuse the filter on the second (see `query`).
//!
//! # Regular expressions
//!
//! `matches` is this module's own (see [`patterns`]): each distinct pattern is
//! compiled once per expression, within [`REGEX_SIZE_LIMIT`], and a literal
//! pattern that is invalid or too costly fails [`Expr::compile`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use cel::common::ast::{EntryExpr, Expr as Node, MapExpr, StructExpr};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, IdedExpr, Program, Value};
use serde_json::Value as Json;

mod patterns;

pub use patterns::{MAX_CACHED, REGEX_SIZE_LIMIT};
use patterns::{Patterns, Scope};

/// Longest accepted source, in characters.
pub const MAX_SOURCE_LEN: usize = 4096;
/// How deep comprehension macros may be nested inside each other's bodies.
pub const MAX_COMPREHENSION_NESTING: usize = 2;
/// Deepest accepted syntax tree. `cel` evaluates recursively, and a long
/// chain such as `1 + 1 + ... + 1` (left-deep, and not limited by its parser)
/// overflows a 2 MiB thread stack at ~1,500 levels in release builds and ~55
/// in unoptimised ones. `&&`/`||` chains are balanced, so they stay shallow.
pub const MAX_DEPTH: usize = 32;

/// The standard CEL environment with this module's `matches`, built once: every
/// evaluation shares it.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    patterns::register(&mut env);
    Arc::new(env)
});

/// Why an expression could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprError {
    /// The source does not parse, is empty, or is nested too deep.
    Syntax { source: String, message: String },
    /// Evaluation failed for a reason in the expression: division by zero,
    /// overflow, an invalid argument (a bad regex), an unknown variable, ...
    Eval { source: String, message: String },
    /// Evaluation failed on the data: a missing field or key, a value of a type
    /// the expression does not handle (`null > 1`, `1.5 + 1`), an index out of
    /// range. Another record may well evaluate.
    Mismatch { source: String, message: String },
    /// A condition evaluated to something other than a bool.
    NotBool { source: String, found: String },
    /// The source is longer than [`MAX_SOURCE_LEN`] characters.
    TooLong,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { source, message } => {
                write!(f, "invalid expression `{source}`: {message}")
            }
            Self::Eval { source, message } | Self::Mismatch { source, message } => {
                write!(f, "evaluating `{source}`: {message}")
            }
            Self::NotBool { source, found } => {
                write!(
                    f,
                    "expression `{source}` must evaluate to a bool, not {found}"
                )
            }
            Self::TooLong => write!(f, "expression longer than {MAX_SOURCE_LEN} characters"),
        }
    }
}

// Written by hand: thiserror treats any field named `source` as the error's
// cause, which must then implement `Error`; here it is the expression text.
impl std::error::Error for ExprError {}

/// A compiled expression: compile once per definition, evaluate many times.
///
/// Cheap to clone (an `Arc`), `Send + Sync`, equal when the sources are equal.
#[derive(Clone)]
pub struct Expr {
    inner: Arc<Compiled>,
}

struct Compiled {
    source: String,
    program: Program,
    /// Shared with the thread-local [`Scope`] while evaluating.
    patterns: Arc<Patterns>,
}

impl Expr {
    /// Parses `source`. Fails with [`ExprError::TooLong`] past
    /// [`MAX_SOURCE_LEN`] characters, and with [`ExprError::Syntax`] when it is
    /// empty, does not parse, is nested too deep (see [`MAX_DEPTH`] and
    /// [`MAX_COMPREHENSION_NESTING`]), or passes `matches` a literal pattern
    /// that is not a valid regex or exceeds [`REGEX_SIZE_LIMIT`].
    pub fn compile(source: &str) -> Result<Expr, ExprError> {
        if source.chars().count() > MAX_SOURCE_LEN {
            return Err(ExprError::TooLong);
        }
        let syntax = |message: String| ExprError::Syntax {
            source: source.to_owned(),
            message,
        };
        if source.trim().is_empty() {
            return Err(syntax("empty expression".to_owned()));
        }
        let program = Program::compile(source).map_err(|e| syntax(e.to_string()))?;
        check_shape(program.expression()).map_err(syntax)?;
        let patterns = Arc::new(Patterns::of(program.expression()).map_err(syntax)?);
        let source = source.to_owned();
        Ok(Expr {
            inner: Arc::new(Compiled {
                source,
                program,
                patterns,
            }),
        })
    }

    /// The source the expression was compiled from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Evaluates a condition; a result other than a bool is [`ExprError::NotBool`].
    pub fn eval_bool(&self, vars: &Vars<'_>) -> Result<bool, ExprError> {
        match self.run(vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(ExprError::NotBool {
                source: self.source().to_owned(),
                found: type_name(&other),
            }),
        }
    }

    /// Evaluates the expression and converts the result to JSON. Timestamps
    /// become RFC 3339 strings and durations strings like `"1.5s"`; bytes,
    /// types and non-finite doubles have no JSON form and are an error.
    pub fn eval(&self, vars: &Vars<'_>) -> Result<Json, ExprError> {
        to_json(&self.run(vars)?).map_err(|message| self.eval_error(message))
    }

    fn run(&self, vars: &Vars<'_>) -> Result<Value, ExprError> {
        self.resolve(self.root(), vars)
    }

    /// The parsed expression, for callers that reason about its shape.
    pub(crate) fn root(&self) -> &cel::IdedExpr {
        self.inner.program.expression()
    }

    /// Evaluates one node of [`Expr::root`] (a sub-expression) with `vars`, as CEL
    /// evaluates it inside the whole expression.
    pub(crate) fn eval_node(
        &self,
        node: &cel::IdedExpr,
        vars: &Vars<'_>,
    ) -> Result<Json, ExprError> {
        let value = self.resolve(node, vars)?;
        to_json(&value).map_err(|message| self.eval_error(message))
    }

    fn resolve(&self, node: &cel::IdedExpr, vars: &Vars<'_>) -> Result<Value, ExprError> {
        let resolver = Resolver(vars);
        let mut context = Context::with_env(Arc::clone(&ENV));
        context.set_variable_resolver(&resolver);
        let _patterns = Scope::enter(&self.inner.patterns);
        context.resolve(node).map_err(|e| self.execution_error(e))
    }

    /// Sorts an evaluation error into [`ExprError::Mismatch`] (the data) or
    /// [`ExprError::Eval`] (the expression).
    fn execution_error(&self, e: ExecutionError) -> ExprError {
        use ExecutionError as E;
        let message = e.to_string();
        match e {
            E::NoSuchKey(_)
            | E::NoSuchOverload(_)
            | E::UnexpectedType { .. }
            | E::ValuesNotComparable(..)
            | E::UnsupportedBinaryOperator(..)
            | E::UnsupportedTargetType { .. }
            | E::NotSupportedAsMethod { .. }
            | E::UnsupportedIndex(..)
            | E::UnsupportedKeyType(_)
            | E::IndexOutOfBounds(_) => ExprError::Mismatch {
                source: self.source().to_owned(),
                message,
            },
            _ => self.eval_error(message),
        }
    }

    fn eval_error(&self, message: String) -> ExprError {
        ExprError::Eval {
            source: self.source().to_owned(),
            message,
        }
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.inner.source).finish()
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.inner.source == other.inner.source
    }
}

impl Eq for Expr {}

/// The variables an expression can see: JSON values by name (`record`,
/// `auth`, `old`, `now`, ...). A name the expression uses but `Vars` lacks is
/// an evaluation error.
///
/// Each value is converted to CEL on first use and the conversion is kept, so
/// evaluating several expressions against the same `Vars` converts it once.
#[derive(Default)]
pub struct Vars<'a> {
    entries: Vec<Entry<'a>>,
}

struct Entry<'a> {
    name: &'a str,
    json: &'a Json,
    val: OnceLock<Box<dyn Val + 'a>>,
}

impl<'a> Vars<'a> {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `name` to `value`, replacing an earlier binding of `name`.
    pub fn with(mut self, name: &'a str, value: &'a Json) -> Self {
        self.entries.retain(|e| e.name != name);
        self.entries.push(Entry {
            name,
            json: value,
            val: OnceLock::new(),
        });
        self
    }
}

impl fmt::Debug for Vars<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries.iter().map(|e| (e.name, e.json));
        f.debug_map().entries(entries).finish()
    }
}

/// Hands `cel` the variables, converting each on first use.
struct Resolver<'x, 'a>(&'x Vars<'a>);

impl VariableResolver for Resolver<'_, '_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let entry = self.0.entries.iter().find(|e| e.name == variable)?;
        let val = entry.val.get_or_init(|| to_val(entry.json));
        Some(CowVal::Borrowed(val.as_ref()))
    }
}

/// JSON to a CEL value borrowing the JSON's strings.
fn to_val(json: &Json) -> Box<dyn Val + '_> {
    match json {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Json::String(s) => Box::new(CelString::from(s.as_str())),
        Json::Array(items) => Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>())),
        Json::Object(fields) => {
            let map = fields
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), to_val(v)));
            Box::new(CelMap::from(map.collect::<HashMap<_, _>>()))
        }
    }
}

/// A CEL result to JSON; the error names what has no JSON form.
fn to_json(value: &Value) -> Result<Json, String> {
    Ok(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| format!("double {f} has no JSON representation"))?,
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(map) => Json::Object(
            (map.map.iter())
                .map(|(k, v)| Ok((k.to_string(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Timestamp(t) => Json::String(t.to_rfc3339()),
        Value::Duration(d) => Json::String(match d.num_nanoseconds() {
            Some(n) if n % 1_000_000_000 != 0 => format!("{}s", n as f64 / 1e9),
            _ => format!("{}s", d.num_seconds()),
        }),
        other => return Err(format!("a {} has no JSON representation", type_name(other))),
    })
}

/// The CEL name of a value's type (`cel` calls `double` "float").
fn type_name(value: &Value) -> String {
    match value {
        Value::Float(_) => "double".to_owned(),
        other => other.type_of().to_string(),
    }
}

/// Rejects a tree deeper than [`MAX_DEPTH`], or with comprehensions nested
/// deeper than [`MAX_COMPREHENSION_NESTING`] in the parts they evaluate once
/// per iteration. Iterative, so a deep tree cannot overflow the stack here.
fn check_shape(root: &IdedExpr) -> Result<(), String> {
    let mut todo = vec![(root, 1, 0)];
    while let Some((node, depth, loops)) = todo.pop() {
        if depth > MAX_DEPTH {
            return Err(format!("expression nested more than {MAX_DEPTH} deep"));
        }
        if loops > MAX_COMPREHENSION_NESTING {
            return Err(format!(
                "comprehensions (all, exists, exists_one, map, filter) nested more than \
                 {MAX_COMPREHENSION_NESTING} deep"
            ));
        }
        // (child, whether it is evaluated once per iteration of `node`)
        let children: Vec<(&IdedExpr, bool)> = match &node.expr {
            Node::Comprehension(c) => vec![
                (&c.iter_range, false),
                (&c.accu_init, false),
                (&c.result, false),
                (&c.loop_cond, true),
                (&c.loop_step, true),
            ],
            Node::Call(call) => (call.target.as_deref().into_iter().chain(&call.args))
                .map(|e| (e, false))
                .collect(),
            Node::List(list) => list.elements.iter().map(|e| (e, false)).collect(),
            Node::Select(select) => vec![(&*select.operand, false)],
            Node::Map(MapExpr { entries }) | Node::Struct(StructExpr { entries, .. }) => entries
                .iter()
                .flat_map(|entry| match &entry.expr {
                    EntryExpr::MapEntry(e) => vec![(&e.key, false), (&e.value, false)],
                    EntryExpr::StructField(f) => vec![(&f.value, false)],
                })
                .collect(),
            _ => Vec::new(),
        };
        let next = |(child, per_iteration)| (child, depth + 1, loops + usize::from(per_iteration));
        todo.extend(children.into_iter().map(next));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(source: &str, record: &Json) -> Result<bool, ExprError> {
        Expr::compile(source)?.eval_bool(&Vars::new().with("record", record))
    }

    fn allows(source: &str, auth: &Json, record: &Json) -> bool {
        let vars = Vars::new().with("auth", auth).with("record", record);
        Expr::compile(source).unwrap().eval_bool(&vars).unwrap()
    }

    #[test]
    fn check_constraints() {
        let dates = "record.check_out > record.check_in";
        let stay = json!({"check_in": "2024-03-09", "check_out": "2024-03-12"});
        assert_eq!(check(dates, &stay), Ok(true));
        let backwards = json!({"check_in": "2024-03-12", "check_out": "2024-03-09"});
        assert_eq!(check(dates, &backwards), Ok(false));
        let same = json!({"check_in": "2024-03-12", "check_out": "2024-03-12"});
        assert_eq!(check(dates, &same), Ok(false));

        let name = "size(record.name) > 0";
        assert_eq!(check(name, &json!({"name": "Ada"})), Ok(true));
        assert_eq!(check(name, &json!({"name": ""})), Ok(false));
        // size() counts code points, not bytes
        assert_eq!(
            check("size(record.name) == 2", &json!({"name": "né"})),
            Ok(true)
        );

        let discount = "!has(record.discount) || record.discount <= record.price";
        assert_eq!(check(discount, &json!({"price": 10})), Ok(true));
        assert_eq!(
            check(discount, &json!({"price": 10, "discount": 5})),
            Ok(true)
        );
        assert_eq!(
            check(discount, &json!({"price": 10, "discount": 15})),
            Ok(false)
        );
        assert_eq!(
            check(discount, &json!({"price": 10.5, "discount": 10})),
            Ok(true)
        );
    }

    #[test]
    fn string_dates_order_chronologically() {
        let cases = [
            ("2023-12-31", "2024-01-01", true),
            ("2024-01-09", "2024-01-10", true),
            ("2024-02-01", "2024-01-31", false),
            ("2024-01-10T09:59:59Z", "2024-01-10T10:00:00Z", true),
        ];
        for (a, b, expected) in cases {
            let record = json!({"a": a, "b": b});
            assert_eq!(
                check("record.a < record.b", &record),
                Ok(expected),
                "{a} < {b}"
            );
        }
        assert_eq!(
            check("record.a <= '2024-01-01'", &json!({"a": "2024-01-01"})),
            Ok(true)
        );
    }

    #[test]
    fn int_and_double_compare() {
        let rule = "record.price >= 0";
        assert_eq!(check(rule, &json!({"price": 10.5})), Ok(true));
        assert_eq!(check(rule, &json!({"price": 10})), Ok(true));
        assert_eq!(check(rule, &json!({"price": 0})), Ok(true));
        assert_eq!(check(rule, &json!({"price": -0.5})), Ok(false));
        assert_eq!(check(rule, &json!({"price": -1})), Ok(false));
        assert_eq!(
            check("record.price == 10", &json!({"price": 10.0})),
            Ok(true)
        );
        assert_eq!(
            check("record.price > 10.25", &json!({"price": 11})),
            Ok(true)
        );
        // above i64::MAX the JSON integer is a uint, still comparable with int
        assert_eq!(check("record.n > 0", &json!({"n": u64::MAX})), Ok(true));
        // ...but CEL does not mix numeric types in arithmetic
        let mixed = check("record.price + 1 > 0", &json!({"price": 1.5}));
        assert!(
            matches!(mixed, Err(ExprError::Mismatch { .. })),
            "{mixed:?}"
        );
        assert_eq!(
            check("record.price + 1.0 > 2.0", &json!({"price": 1.5})),
            Ok(true)
        );
    }

    #[test]
    fn access_rules() {
        let record = json!({"created_by": "u1", "assignee_id": "u2"});
        let owner = "auth.role == \"SuperAdmin\" || record.created_by == auth.uuid";
        let admin = json!({"role": "SuperAdmin", "uuid": "u9"});
        let creator = json!({"role": "staff", "uuid": "u1"});
        let assignee = json!({"role": "staff", "uuid": "u2"});
        let manager = json!({"role": "manager", "uuid": "u3"});
        assert!(allows(owner, &admin, &record));
        assert!(allows(owner, &creator, &record));
        assert!(!allows(owner, &assignee, &record));

        let roles = "auth.role in [\"manager\", \"SuperAdmin\"]";
        assert!(allows(roles, &manager, &record));
        assert!(allows(roles, &admin, &record));
        assert!(!allows(roles, &creator, &record));
        assert!(
            !allows(roles, &json!({"role": "Manager"}), &record),
            "case-sensitive"
        );

        let assigned = "record.assignee_id == auth.uuid";
        assert!(allows(assigned, &assignee, &record));
        assert!(!allows(assigned, &creator, &record));
    }

    #[test]
    fn conditions_and_filters() {
        let live = "record.status != \"cancelled\"";
        assert_eq!(check(live, &json!({"status": "confirmed"})), Ok(true));
        assert_eq!(check(live, &json!({"status": "cancelled"})), Ok(false));

        let filter = "record.nights >= 3 && record.source == \"airbnb\"";
        assert_eq!(
            check(filter, &json!({"nights": 3, "source": "airbnb"})),
            Ok(true)
        );
        assert_eq!(
            check(filter, &json!({"nights": 2, "source": "airbnb"})),
            Ok(false)
        );
        assert_eq!(
            check(filter, &json!({"nights": 5, "source": "booking"})),
            Ok(false)
        );
    }

    #[test]
    fn in_lists_and_maps() {
        let record = json!({"tags": ["vip", "late"], "meta": {"k": 1}, "n": 2});
        assert_eq!(check("'vip' in record.tags", &record), Ok(true));
        assert_eq!(check("'early' in record.tags", &record), Ok(false));
        assert_eq!(check("'k' in record.meta", &record), Ok(true), "map keys");
        assert_eq!(
            check("record.n in [1.0, 2.0]", &record),
            Ok(true),
            "numeric"
        );
        let all = "record.tags.all(t, size(t) > 2)";
        assert_eq!(check(all, &record), Ok(true));
        assert_eq!(
            check("record.tags.exists(t, t == 'late')", &record),
            Ok(true)
        );
    }

    #[test]
    fn has_guards_optional_fields() {
        assert_eq!(
            check("has(record.discount)", &json!({"discount": 1})),
            Ok(true)
        );
        assert_eq!(check("has(record.discount)", &json!({})), Ok(false));
        // a field holding null is present
        assert_eq!(
            check("has(record.discount)", &json!({"discount": null})),
            Ok(true)
        );
        let null_ok = "!has(record.d) || record.d == null || record.d <= 1";
        assert_eq!(check(null_ok, &json!({"d": null})), Ok(true));
        assert!(check("record.d <= 1", &json!({"d": null})).is_err());
    }

    #[test]
    fn missing_field_and_variable_are_errors() {
        let err = check("record.discount <= record.price", &json!({"price": 1})).unwrap_err();
        let ExprError::Mismatch { source, message } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(source, "record.discount <= record.price");
        assert!(message.contains("discount"), "{message}");
        assert!(err.to_string().contains("discount"));

        let rule = Expr::compile("auth.role == 'x'").unwrap();
        let record = json!({});
        let err = rule.eval_bool(&Vars::new().with("record", &record));
        assert!(matches!(&err, Err(ExprError::Eval { message, .. }) if message.contains("auth")));
    }

    #[test]
    fn non_bool_is_an_error() {
        let record = json!({"price": 10.5, "name": "x"});
        let err = check("record.price", &record).unwrap_err();
        let found = |e| match e {
            ExprError::NotBool { found, .. } => found,
            other => panic!("{other:?}"),
        };
        assert_eq!(found(err.clone()), "double");
        assert!(err.to_string().contains("must evaluate to a bool"));
        assert_eq!(found(check("record.name", &record).unwrap_err()), "string");
        assert_eq!(found(check("1", &record).unwrap_err()), "int");
        assert_eq!(found(check("null", &record).unwrap_err()), "null");
    }

    #[test]
    fn compile_errors() {
        let err = Expr::compile("record.price >=").unwrap_err();
        let ExprError::Syntax { source, message } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(source, "record.price >=");
        assert!(
            message.contains("1:16: Syntax error: mismatched input"),
            "{message}"
        );
        assert!(
            err.to_string()
                .starts_with("invalid expression `record.price >=`")
        );

        let unbalanced = Expr::compile("(record.a == 1").unwrap_err().to_string();
        assert!(unbalanced.contains("ERROR"), "{unbalanced}");
        assert!(matches!(Expr::compile(""), Err(ExprError::Syntax { .. })));
        assert!(matches!(
            Expr::compile("  \n"),
            Err(ExprError::Syntax { .. })
        ));

        let long = format!("record.a == '{}'", "x".repeat(MAX_SOURCE_LEN));
        assert_eq!(Expr::compile(&long), Err(ExprError::TooLong));
    }

    #[test]
    fn deep_trees_are_rejected() {
        let ok = format!("1{} > 0", " + 1".repeat(MAX_DEPTH - 2));
        assert_eq!(check(&ok, &json!({})), Ok(true));
        let deep = format!("1{} > 0", " + 1".repeat(MAX_DEPTH));
        let err = Expr::compile(&deep).unwrap_err().to_string();
        assert!(err.contains("nested more than 32 deep"), "{err}");
        // `&&` chains are balanced: a long filter stays shallow
        let filter = (0..40)
            .map(|i| format!("record.f{i} == {i}"))
            .collect::<Vec<_>>();
        let record: serde_json::Map<_, _> = (0..40).map(|i| (format!("f{i}"), json!(i))).collect();
        assert_eq!(check(&filter.join(" && "), &record.into()), Ok(true));
    }

    #[test]
    fn comprehension_nesting_is_capped() {
        let two = "record.a.all(x, record.a.exists(y, x == y))";
        assert_eq!(check(two, &json!({"a": [1, 2]})), Ok(true));
        let three = "record.a.all(x, record.a.all(y, record.a.all(z, x + y + z >= 0)))";
        let err = Expr::compile(three).unwrap_err();
        assert!(err.to_string().contains("comprehensions"), "{err}");
        // sequential comprehensions do not multiply
        let seq = "record.a.all(x, x > 0) && record.a.exists(x, x > 1) && record.a.all(x, x < 3)";
        assert_eq!(check(seq, &json!({"a": [1, 2]})), Ok(true));
    }

    #[test]
    fn regexes_compile_once_within_limits() {
        // The review's filter: refused when compiled, naming the limit.
        let err = Expr::compile(r#"record.t.matches("a{1000}{1000}{1000}")"#).unwrap_err();
        assert!(matches!(err, ExprError::Syntax { .. }), "{err:?}");
        let limit = format!("size limit of {REGEX_SIZE_LIMIT} bytes");
        assert!(err.to_string().contains(&limit), "{err}");
        let err = Expr::compile("matches(record.t, '(x')").unwrap_err();
        assert!(err.to_string().contains("invalid regex"), "{err}");

        let record = json!({"t": "abc"});
        assert_eq!(check("record.t.matches('^a+b')", &record), Ok(true));
        assert_eq!(check("matches(record.t, 'c$')", &record), Ok(true));
        assert_eq!(check("record.t.matches('^b')", &record), Ok(false));
        let literal = Expr::compile("record.t.matches('^a') || record.t.matches('^a')").unwrap();
        assert_eq!(
            literal.inner.patterns.len(),
            1,
            "compiled with the expression"
        );

        // Patterns computed at run time: compiled once each; a bad one is the
        // expression's error, not the record's.
        let dynamic = Expr::compile("record.t.matches(record.p)").unwrap();
        for p in ["^a", "b", "^a", "b", "^a"] {
            let r = json!({"t": "abc", "p": p});
            assert_eq!(dynamic.eval_bool(&Vars::new().with("record", &r)), Ok(true));
        }
        assert_eq!(dynamic.inner.patterns.len(), 2);
        let bad = json!({"t": "abc", "p": "a{1000}{1000}{1000}"});
        let err = dynamic.eval_bool(&Vars::new().with("record", &bad));
        assert!(
            matches!(&err, Err(ExprError::Eval { message, .. }) if message.contains(&limit)),
            "{err:?}"
        );
    }

    #[test]
    fn errors_tell_the_data_from_the_expression() {
        let record = json!({"n": 0, "x": null, "l": []});
        let kind = |source: &str| match check(source, &record) {
            Err(ExprError::Mismatch { .. }) => "data",
            Err(ExprError::Eval { .. }) => "expression",
            Err(ExprError::NotBool { .. }) => "not a bool",
            other => panic!("{source}: {other:?}"),
        };
        assert_eq!(kind("record.missing == 1"), "data");
        assert_eq!(kind("record.x > 1"), "data");
        assert_eq!(kind("record.l[0] == 1"), "data");
        assert_eq!(kind("1 / record.n == 1"), "expression");
        assert_eq!(kind("1 / 0 == 1"), "expression");
        assert_eq!(kind("unknown == 1"), "expression");
        assert_eq!(kind("record.n"), "not a bool");
    }

    #[test]
    fn eval_round_trips_json() {
        let record = json!({
            "id": "r1",
            "n": 3,
            "big": u64::MAX,
            "neg": -7,
            "price": 10.5,
            "ok": true,
            "none": null,
            "tags": ["a", 1, 2.5, null, [true, {"x": []}]],
            "guest": {"name": "Ada", "address": {"city": "Paris", "zip": ["75", 1]}},
            "empty": {}
        });
        let vars = Vars::new().with("record", &record);
        assert_eq!(
            Expr::compile("record").unwrap().eval(&vars),
            Ok(record.clone())
        );
        let picked = Expr::compile("record.guest.address").unwrap().eval(&vars);
        assert_eq!(picked, Ok(record["guest"]["address"].clone()));

        let built = "{'n': record.n + 1, 'l': record.tags.filter(t, t == 'a'), 'd': 1.5, 'u': 2u}";
        let value = Expr::compile(built).unwrap().eval(&vars);
        assert_eq!(value, Ok(json!({"n": 4, "l": ["a"], "d": 1.5, "u": 2})));
        let ts = Expr::compile("timestamp('2024-01-02T03:04:05Z')")
            .unwrap()
            .eval(&vars);
        assert_eq!(ts, Ok(json!("2024-01-02T03:04:05+00:00")));
        assert_eq!(
            Expr::compile("duration('90s')").unwrap().eval(&vars),
            Ok(json!("90s"))
        );
        assert!(Expr::compile("b'x'").unwrap().eval(&vars).is_err());
    }

    #[test]
    fn vars_bind_by_name() {
        let (a, b) = (json!(1), json!(2));
        let vars = Vars::new().with("x", &a).with("x", &b);
        assert_eq!(Expr::compile("x").unwrap().eval(&vars), Ok(json!(2)));
        // reused across expressions and evaluations
        let sum = Expr::compile("x + x == 4").unwrap();
        assert_eq!(sum.eval_bool(&vars), Ok(true));
        assert_eq!(sum.eval_bool(&vars), Ok(true));
        assert_eq!(format!("{vars:?}"), "{\"x\": Number(2)}");
    }

    #[test]
    fn expr_is_shareable() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Expr>();
        assert_send_sync::<ExprError>();

        let rule = Expr::compile("record.n > 1").unwrap();
        assert_eq!(rule.source(), "record.n > 1");
        assert_eq!(rule.clone(), Expr::compile("record.n > 1").unwrap());
        assert_ne!(rule, Expr::compile("record.n > 2").unwrap());
        assert_eq!(format!("{rule:?}"), "Expr(\"record.n > 1\")");
        let shared = rule.clone();
        let handle = std::thread::spawn(move || {
            let record = json!({"n": 2});
            shared.eval_bool(&Vars::new().with("record", &record))
        });
        assert_eq!(handle.join().unwrap(), Ok(true));
    }

    #[test]
    #[ignore = "micro-benchmark: cargo test --release -- --ignored --nocapture"]
    fn bench_eval_bool() {
        let rule =
            Expr::compile("record.check_out > record.check_in && record.status != \"cancelled\"")
                .unwrap();
        let record = json!({
            "id": "01HZX", "check_in": "2024-03-09", "check_out": "2024-03-12",
            "status": "confirmed", "nights": 3, "price": 420.5, "source": "airbnb",
            "guest": {"name": "Ada", "email": "ada@example.com"}
        });
        let rounds = 200_000;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            let vars = Vars::new().with("record", &record);
            assert!(rule.eval_bool(std::hint::black_box(&vars)).unwrap());
        }
        let fresh = start.elapsed() / rounds;
        let vars = Vars::new().with("record", &record);
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            assert!(rule.eval_bool(std::hint::black_box(&vars)).unwrap());
        }
        let reused = start.elapsed() / rounds;
        println!("eval_bool mean: {fresh:?} with fresh Vars, {reused:?} with reused Vars");
    }
}
