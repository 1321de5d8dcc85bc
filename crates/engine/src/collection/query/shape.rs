//! Filter shapes: what a CEL filter reads, and the conjuncts decided without CEL.

use super::*;

/// What a CEL filter reads of `record`, and the comparisons it requires.
pub(super) struct FilterShape {
    /// The top-level fields it reads; `None` when it uses `record` otherwise (or the
    /// caller binds a variable that may stand for it).
    pub(super) fields: Option<BTreeSet<String>>,
    /// Its top-level conjuncts of the form `record.field <op> literal`: a record matches
    /// only if each holds.
    pub(super) compares: Vec<Compare>,
    /// It is the conjunction of `compares` and nothing else.
    pub(super) complete: bool,
}

impl FilterShape {
    pub(super) fn of(filter: &Expr, vars: &[(&str, &Value)]) -> FilterShape {
        let unknown = FilterShape {
            fields: None,
            compares: Vec::new(),
            complete: false,
        };
        if vars
            .iter()
            .any(|(name, _)| name.trim_start_matches('.').starts_with("record"))
        {
            return unknown;
        }
        let Ok(program) = cel::Program::compile(filter.source()) else {
            return unknown;
        };
        let root = program.expression();
        let mut leaves = Vec::new();
        conjuncts(root, &mut leaves);
        let compares: Vec<Compare> = leaves.iter().filter_map(|c| Compare::of(c)).collect();
        FilterShape {
            fields: record_fields(root),
            complete: compares.len() == leaves.len(),
            compares,
        }
    }

    /// The filter's verdict on `record` where the comparisons settle it: one fails (or
    /// would fail to evaluate), or all hold and are the whole filter.
    pub(super) fn verdict(&self, record: &Record<'_>) -> Option<bool> {
        let mut settled = self.complete;
        for compare in &self.compares {
            match compare.eval(record.get(&compare.field)) {
                Some(true) => {}
                Some(false) => return Some(false),
                None => settled = false,
            }
        }
        settled.then_some(true)
    }

    /// `record.field == literal` conjuncts with a string, boolean or null: a matching
    /// record's field holds exactly that JSON value.
    pub(super) fn equals(&self) -> impl Iterator<Item = (&str, Value)> + '_ {
        self.compares.iter().filter_map(|c| {
            let value = match (&c.op, &c.literal) {
                (Op::Eq, Literal::String(s)) => Value::String(s.clone()),
                (Op::Eq, Literal::Bool(b)) => Value::Bool(*b),
                (Op::Eq, Literal::Null) => Value::Null,
                _ => return None,
            };
            Some((c.field.as_str(), value))
        })
    }
}

pub(super) fn is_record(node: &IdedExpr) -> bool {
    matches!(&node.expr, Node::Ident(name) if name.trim_start_matches('.') == "record")
}

/// The operands of the top-level `&&`s (a CEL `&&` is true only when both sides are).
pub(super) fn conjuncts<'e>(node: &'e IdedExpr, out: &mut Vec<&'e IdedExpr>) {
    match &node.expr {
        Node::Call(call) if call.target.is_none() && call.func_name == LOGICAL_AND => {
            call.args.iter().for_each(|arg| conjuncts(arg, out));
        }
        _ => out.push(node),
    }
}

/// A conjunct `record.field <op> literal` (or `literal <op> record.field`), which a list
/// evaluates itself where it knows CEL's answer.
#[derive(Debug)]
pub(super) struct Compare {
    pub(super) field: String,
    pub(super) op: Op,
    pub(super) literal: Literal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
pub(super) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(String),
}

/// A CEL number: JSON integers are `int` when they fit, else `uint`; others `double`.
#[derive(Clone, Copy)]
pub(super) enum Num {
    Int(i64),
    UInt(u64),
    Double(f64),
}

impl Num {
    pub(super) fn of(n: &serde_json::Number) -> Num {
        match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Num::Int(i),
            (None, Some(u)) => Num::UInt(u),
            _ => Num::Double(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// As `cel` compares numbers: integers exactly, a double with anything as `f64`.
    pub(super) fn cmp(self, other: Num) -> Option<Ordering> {
        let float = |n| match n {
            Num::Int(i) => i as f64,
            Num::UInt(u) => u as f64,
            Num::Double(d) => d,
        };
        let int = |n| match n {
            Num::Int(i) => Some(i128::from(i)),
            Num::UInt(u) => Some(i128::from(u)),
            Num::Double(_) => None,
        };
        match (int(self), int(other)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => float(self).partial_cmp(&float(other)),
        }
    }

    pub(super) fn same_kind(self, other: Num) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }
}

impl Compare {
    pub(super) fn of(node: &IdedExpr) -> Option<Compare> {
        let Node::Call(call) = &node.expr else {
            return None;
        };
        let op = match call.func_name.as_str() {
            _ if call.target.is_some() => return None,
            EQUALS => Op::Eq,
            NOT_EQUALS => Op::Ne,
            LESS => Op::Lt,
            LESS_EQUALS => Op::Le,
            GREATER => Op::Gt,
            GREATER_EQUALS => Op::Ge,
            _ => return None,
        };
        let [a, b] = call.args.as_slice() else {
            return None;
        };
        let flipped = match op {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            same => same,
        };
        let (field, op, literal) = match (record_field(a), literal(b)) {
            (Some(field), Some(literal)) => (field, op, literal),
            _ => (record_field(b)?, flipped, literal(a)?),
        };
        Some(Compare { field, op, literal })
    }

    /// CEL's verdict on a record whose field holds `value` (`None`: missing), where the
    /// list can tell it: `Some(false)` also stands for an error (no match either way).
    pub(super) fn eval(&self, value: Option<&Value>) -> Option<bool> {
        let equality = matches!(self.op, Op::Eq | Op::Ne);
        let Some(value) = value else {
            return Some(false); // no such key: an error
        };
        let ord = match (value, &self.literal) {
            (Value::String(x), Literal::String(y)) => x.as_str().cmp(y.as_str()),
            (Value::Bool(x), Literal::Bool(y)) if equality => x.cmp(y),
            (Value::Null, Literal::Null) if equality => Ordering::Equal,
            (Value::Number(x), y) => {
                let x = Num::of(x);
                let y = match y {
                    Literal::Int(i) => Num::Int(*i),
                    Literal::UInt(u) => Num::UInt(*u),
                    Literal::Double(d) => Num::Double(*d),
                    _ => return None,
                };
                if equality && !x.same_kind(y) {
                    return None;
                }
                x.cmp(y)?
            }
            _ => return None,
        };
        Some(match self.op {
            Op::Eq => ord == Ordering::Equal,
            Op::Ne => ord != Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
        })
    }
}

/// `record.field` (not `has(record.field)`).
pub(super) fn record_field(node: &IdedExpr) -> Option<String> {
    match &node.expr {
        Node::Select(select) if !select.test && is_record(&select.operand) => {
            Some(select.field.clone())
        }
        _ => None,
    }
}

pub(super) fn literal(node: &IdedExpr) -> Option<Literal> {
    let Node::Literal(literal) = &node.expr else {
        return None;
    };
    Some(match literal {
        LiteralValue::Null => Literal::Null,
        LiteralValue::Boolean(b) => Literal::Bool(*b.inner()),
        LiteralValue::Int(i) => Literal::Int(*i.inner()),
        LiteralValue::UInt(u) => Literal::UInt(*u.inner()),
        LiteralValue::Double(d) => Literal::Double(*d.inner()),
        LiteralValue::String(s) => Literal::String(s.inner().to_owned()),
        LiteralValue::Bytes(_) => return None,
    })
}

/// The fields read as `record.field` (or tested with `has`); `None` if `record` (or a
/// name that could resolve to it) appears in any other way.
pub(super) fn record_fields(root: &IdedExpr) -> Option<BTreeSet<String>> {
    let mut fields = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(node) = todo.pop() {
        match &node.expr {
            Node::Select(select) if is_record(&select.operand) => {
                fields.insert(select.field.clone());
            }
            Node::Select(select) => todo.push(&select.operand),
            Node::Ident(name) if name.trim_start_matches('.').starts_with("record") => {
                return None;
            }
            Node::Call(call) => {
                todo.extend(call.target.as_deref());
                todo.extend(&call.args);
            }
            Node::Comprehension(c) => todo.extend([
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]),
            Node::List(list) => todo.extend(&list.elements),
            Node::Map(MapExpr { entries }) | Node::Struct(StructExpr { entries, .. }) => {
                for entry in entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(e) => todo.extend([&e.key, &e.value]),
                        EntryExpr::StructField(f) => todo.push(&f.value),
                    }
                }
            }
            Node::Ident(_) | Node::Literal(_) | Node::Unspecified => {}
        }
    }
    Some(fields)
}

/// The values a filter value may match (query strings are untyped): itself, and for a
/// string that is JSON for something else, that.
pub(super) fn value_forms(value: &Value) -> Vec<Value> {
    let mut forms = vec![value.clone()];
    if let Value::String(s) = value
        && let Ok(parsed) = serde_json::from_str::<Value>(s)
        && !parsed.is_string()
    {
        forms.push(parsed);
    }
    forms
}

pub(super) fn loosely_equal(field: Option<&Value>, wanted: &Value) -> bool {
    let field = field.unwrap_or(&Value::Null);
    field == wanted
        || matches!(wanted, Value::String(s) if serde_json::from_str::<Value>(s).ok().as_ref() == Some(field))
}
