//! Regular expressions in expressions (`s.matches(re)`, `matches(s, re)`): compiled once
//! per distinct pattern per expression, within size limits.
//!
//! Why not `cel`'s own `matches`: it compiles its pattern on every call, with the `regex`
//! crate's default limits. `regex` matches in time linear in the text, so what a pattern
//! costs is compiling it, and that grows with the pattern's expansion:
//! `a{1000}{1000}{1000}` works for milliseconds before the default limit stops it. A list
//! filter paid that once per record, then counted the error as "no match". Here:
//!
//! - every expression owns a [`Patterns`] cache. The string literals it passes to
//!   `matches` are compiled with the expression, so an invalid or too costly literal
//!   pattern is a compile error that names the problem (and the size limit);
//! - a pattern computed at run time (`'x'.matches(record.pattern)`) is compiled on first
//!   use and kept, up to [`MAX_CACHED`] patterns; a bad one is an evaluation error;
//! - compiling is bounded by [`REGEX_SIZE_LIMIT`] (`regex`'s `size_limit` and
//!   `dfa_size_limit`), so no pattern costs more than about a millisecond to compile or
//!   refuse.
//!
//! `cel` calls functions through plain `fn` pointers, with no state of their own, so the
//! `matches` registered here finds the cache of the expression being evaluated through a
//! thread-local that [`Scope`] sets for the length of one evaluation. (This needs `cel`
//! built without its `regex` feature, which would declare a `matches` of its own; see
//! the workspace `Cargo.toml`.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::{Expr as Node, LiteralValue};
use cel::common::types::{CelBool, CelString};
use cel::{Env, ExecutionError, IdedExpr};
use parking_lot::Mutex;
use regex::{Regex, RegexBuilder};

/// Largest compiled form of one pattern, in bytes (also the lazy DFA's cache limit).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Most distinct run-time patterns one expression keeps compiled; past that, a new pattern
/// is compiled for each use (still within [`REGEX_SIZE_LIMIT`]).
pub const MAX_CACHED: usize = 64;

/// One pattern, compiled within the limits; the error names the pattern and the problem.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "regex {pattern:?} is too costly: compiled, it exceeds the size limit of \
                 {limit} bytes"
            ),
            other => format!("invalid regex {pattern:?}: {other}"),
        })
}

/// The compiled patterns of one expression.
#[derive(Default)]
pub(super) struct Patterns {
    compiled: Mutex<HashMap<String, Result<Arc<Regex>, String>>>,
}

impl Patterns {
    /// Compiles the literal patterns of the expression rooted at `root`; the first that
    /// does not compile is the error.
    pub(super) fn of(root: &IdedExpr) -> Result<Patterns, String> {
        let mut compiled = HashMap::new();
        let mut todo = vec![root];
        while let Some(node) = todo.pop() {
            if let Some(pattern) = literal_pattern(node)
                && !compiled.contains_key(pattern)
            {
                compiled.insert(pattern.to_owned(), Ok(Arc::new(compile(pattern)?)));
            }
            todo.extend(children(node));
        }
        Ok(Patterns {
            compiled: Mutex::new(compiled),
        })
    }

    /// How many patterns are compiled (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.compiled.lock().len()
    }

    fn get(&self, pattern: &str) -> Result<Arc<Regex>, String> {
        if let Some(known) = self.compiled.lock().get(pattern) {
            return known.clone();
        }
        // Compiled outside the lock: an expression may be evaluated on several threads.
        let fresh = compile(pattern).map(Arc::new);
        let mut compiled = self.compiled.lock();
        if compiled.len() < MAX_CACHED {
            compiled.insert(pattern.to_owned(), fresh.clone());
        }
        fresh
    }
}

/// The pattern of a `matches` call, when it is a string literal.
fn literal_pattern(node: &IdedExpr) -> Option<&str> {
    let Node::Call(call) = &node.expr else {
        return None;
    };
    if call.func_name != "matches" {
        return None;
    }
    let pattern = match (&call.target, call.args.as_slice()) {
        (Some(_), [pattern]) | (None, [_, pattern]) => pattern,
        _ => return None,
    };
    match &pattern.expr {
        Node::Literal(LiteralValue::String(s)) => Some(s.inner()),
        _ => None,
    }
}

/// The sub-expressions of `node`.
/// The sub-expressions of `node`.
pub(super) fn children(node: &IdedExpr) -> Vec<&IdedExpr> {
    use cel::common::ast::{EntryExpr, MapExpr, StructExpr};
    match &node.expr {
        Node::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Node::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Node::List(list) => list.elements.iter().collect(),
        Node::Select(select) => vec![&*select.operand],
        Node::Map(MapExpr { entries }) | Node::Struct(StructExpr { entries, .. }) => entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        _ => Vec::new(),
    }
}

thread_local! {
    /// The patterns of the expression this thread is evaluating.
    static CURRENT: RefCell<Option<Arc<Patterns>>> = const { RefCell::new(None) };
}

/// Makes `matches` use an expression's patterns until dropped.
pub(super) struct Scope(Option<Arc<Patterns>>);

impl Scope {
    pub(super) fn enter(patterns: &Arc<Patterns>) -> Scope {
        Scope(CURRENT.with(|c| c.replace(Some(Arc::clone(patterns)))))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// `text.matches(pattern)`: whether the pattern matches anywhere in the text.
fn matches(text: &CelString<'_>, pattern: &CelString<'_>) -> Result<CelBool, ExecutionError> {
    let pattern = pattern.inner();
    let current = CURRENT.with(|c| c.borrow().clone());
    let regex = match current {
        Some(patterns) => patterns.get(pattern),
        None => compile(pattern).map(Arc::new),
    };
    let regex = regex.map_err(|message| ExecutionError::FunctionError {
        function: "matches".to_owned(),
        message,
    })?;
    Ok(CelBool::from(regex.is_match(text.inner())))
}

/// Declares `matches(string, string)` and `string.matches(string)` on `env`.
pub(super) fn register(env: &mut Env) {
    const HOW: &str = "`cel` declares its own `matches`: build it without its `regex` feature";
    cel::add_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>,
        id = "matches")
    .expect(HOW);
    cel::add_member_overload!(env, fn matches: (CelString, CelString) -> Result<CelBool>)
        .expect(HOW);
}
