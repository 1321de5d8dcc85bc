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

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    reads: Reads,
}

/// The top-level fields an expression reads of each variable it only ever selects
/// fields of (`record.status`, `has(record.x)`): an evaluation converts only those to
/// CEL, not the whole record (a record of twenty fields cost a map of twenty values for
/// a condition on one). A variable named in any other way (`record == old`,
/// `size(record)`, `record["x"]`, a comprehension over it) is converted whole, as is
/// every variable when the expression does not name it this way. Over-counting (a
/// comprehension's own variable of the same name) only converts a field more.
#[derive(Debug, Default)]
struct Reads {
    /// By variable: the fields selected, sorted.
    selected: Vec<(String, Vec<String>)>,
}

impl Reads {
    fn of(root: &IdedExpr) -> Reads {
        let mut selected: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut whole: BTreeSet<&str> = BTreeSet::new();
        let mut todo = vec![root];
        while let Some(node) = todo.pop() {
            match &node.expr {
                Node::Select(select) => {
                    if let Node::Ident(variable) = &select.operand.expr {
                        selected.entry(variable).or_default().insert(&select.field);
                        continue;
                    }
                }
                Node::Ident(variable) => {
                    whole.insert(variable);
                }
                _ => {}
            }
            todo.extend(patterns::children(node));
        }
        let selected = selected
            .into_iter()
            .filter(|(variable, _)| !whole.contains(variable))
            .map(|(variable, fields)| {
                let fields = fields.into_iter().map(str::to_owned).collect();
                (variable.to_owned(), fields)
            })
            .collect();
        Reads { selected }
    }

    /// The fields read of `variable`, if only those are.
    fn fields_of(&self, variable: &str) -> Option<&[String]> {
        self.selected
            .iter()
            .find(|(v, _)| v == variable)
            .map(|(_, fields)| fields.as_slice())
    }
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
        let reads = Reads::of(program.expression());
        let source = source.to_owned();
        Ok(Expr {
            inner: Arc::new(Compiled {
                source,
                program,
                patterns,
                reads,
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
        self.resolve_reading(node, vars, &self.inner.reads)
    }

    /// [`Expr::resolve`], converting of the variables what `reads` says.
    fn resolve_reading(
        &self,
        node: &cel::IdedExpr,
        vars: &Vars<'_>,
        reads: &Reads,
    ) -> Result<Value, ExprError> {
        // Room for partial conversions only where the expression makes some.
        let fields = if reads.selected.is_empty() {
            Vec::new()
        } else {
            vars.entries.iter().map(|_| OnceLock::new()).collect()
        };
        let resolver = Resolver {
            vars,
            reads,
            fields,
        };
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
/// Each value is converted to CEL on first use. A whole conversion is kept, so
/// evaluating several expressions against the same `Vars` converts it once; an
/// expression that only selects some fields of a value converts just those, for that
/// evaluation (see `Reads`).
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

/// Hands `cel` the variables, converting each on first use: whole (kept in `Vars` for
/// other expressions), or only the fields the expression reads ([`Reads`]; kept for
/// this evaluation).
struct Resolver<'x, 'a> {
    vars: &'x Vars<'a>,
    reads: &'x Reads,
    /// By variable, as in `vars`: its fields this evaluation reads, converted (empty
    /// when the expression reads no variable in part: then it is never indexed).
    fields: Vec<OnceLock<Box<dyn Val + 'a>>>,
}

impl VariableResolver for Resolver<'_, '_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let at = self.vars.entries.iter().position(|e| e.name == variable)?;
        let entry = &self.vars.entries[at];
        let val = match (entry.val.get(), self.reads.fields_of(variable)) {
            (None, Some(fields)) => self.fields[at].get_or_init(|| to_val_of(entry.json, fields)),
            _ => entry.val.get_or_init(|| to_val(entry.json)),
        };
        Some(CowVal::Borrowed(val.as_ref()))
    }
}

/// [`to_val`] of an object's `fields` only (those it has); any other value whole.
fn to_val_of<'j>(json: &'j Json, fields: &[String]) -> Box<dyn Val + 'j> {
    let Json::Object(object) = json else {
        return to_val(json);
    };
    let map = fields
        .iter()
        .filter_map(|field| object.get_key_value(field))
        .map(|(k, v)| (CelMapKey::from(k.as_str()), to_val(v)));
    Box::new(CelMap::from(map.collect::<HashMap<_, _>>()))
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
mod tests;
