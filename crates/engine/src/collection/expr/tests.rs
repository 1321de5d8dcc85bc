//! The CEL subset: what it accepts, what it refuses, and how its errors read.

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

/// An expression that only selects fields of a variable converts only those fields;
/// one that names it any other way converts it whole.
#[test]
fn reads_name_the_fields_an_expression_selects() {
    let reads = |source: &str| {
        let expr = Expr::compile(source).unwrap();
        let record = expr.inner.reads.fields_of("record").map(<[String]>::to_vec);
        let auth = expr.inner.reads.fields_of("auth").map(<[String]>::to_vec);
        (record, auth)
    };
    let some = |fields: &[&str]| Some(fields.iter().map(|f| f.to_string()).collect::<Vec<_>>());
    assert_eq!(
        reads("record.check_in < record.check_out && record.status != 'x'"),
        (some(&["check_in", "check_out", "status"]), None)
    );
    assert_eq!(
        reads("has(record.x) && record.y.z == auth.user"),
        (some(&["x", "y"]), some(&["user"]))
    );
    for whole in [
        "size(record) > 1",
        "record == {'a': 1}",
        "record['a'] == 1",
        "'a' in record",
        "record.a == 1 && record.all(k, k != 'b')",
        "[1].exists(record, record > 0) && record.a == 1",
    ] {
        assert_eq!(reads(whole).0, None, "{whole}");
    }
}

/// Converting only the fields an expression reads answers what converting the whole
/// record answers, errors included.
#[test]
fn reading_some_fields_answers_as_reading_all() {
    let records = [
        json!({"a": 1, "b": 2.5, "s": "x", "n": null, "l": [1, 2], "m": {"k": "v"}, "t": true}),
        json!({"a": 5, "s": "y", "m": {}}),
        json!({}),
        json!(null),
        json!([1, 2]),
    ];
    let sources = [
        "record.a < record.b",
        "record.a == 1 && record.s == 'x'",
        "has(record.b) ? record.b > 2.0 : record.a > 4",
        "record.m.k == 'v'",
        "has(record.m.k)",
        "record.l[1] == 2 && record.t",
        "record.n == null",
        "record.missing == 1",
        "record.s.startsWith('x') || record.a > 3",
        "record.l.exists(x, x == record.a)",
        "size(record) == 7",
        "record.a + record.s",
    ];
    for source in sources {
        let expr = Expr::compile(source).unwrap();
        for record in &records {
            let vars = Vars::new().with("record", record);
            let read = expr.eval(&vars);
            let whole = expr
                .resolve_reading(
                    expr.root(),
                    &Vars::new().with("record", record),
                    &Reads::default(),
                )
                .and_then(|value| to_json(&value).map_err(|m| expr.eval_error(m)));
            assert_eq!(read, whole, "{source} on {record}");
        }
    }
}
