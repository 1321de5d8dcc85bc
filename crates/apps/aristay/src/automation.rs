//! Automatic tasks: the auto-task templates applied to bookings, as an engine hook, so
//! every change happens in the same transaction as the booking change that caused it.
//!
//! - A booking that becomes active (created confirmed, restored, or un-cancelled) gets one
//!   task per matching active template, and an `auto_task_records` row per (booking,
//!   template). That row is unique, and it is looked up before anything is created, so
//!   retries and re-imports never make a second task.
//! - A date (or property) change of an active booking moves its automatic tasks that are
//!   still open, except those whose schedule a person changed (`schedule_locked`).
//! - A booking that stops being active (cancelled, soft-deleted) cancels its open automatic
//!   tasks (`auto_cancelled`); becoming active again reopens exactly those.
//! - A person changing an automatic task's `due_at` or `time_of_day` locks its schedule.
//!
//! Everything the automation writes is audited with the source `automation`. A
//! transaction tagged [`NO_AUTOMATION`] (an import run without automations) is left alone.

use std::collections::HashMap;
use std::sync::Arc;

use bucketbase_engine::collection::expr::{Expr, Vars};
use bucketbase_engine::collection::keys::is_live;
use bucketbase_engine::collection::{Action, Change, Hook};
use bucketbase_engine::{CollectionName, Error, RecordId, Result, Tag, Txn};
use chrono::{Duration, NaiveDate};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

/// Audit source of everything the automation writes.
pub const AUTOMATION: &str = "automation";
/// Transaction tag that turns the automation off (imports with `run_automations=false`).
pub const NO_AUTOMATION: Tag = Tag::new("no_automation");

const OPEN: [&str; 2] = ["pending", "in_progress"];

/// The collections the automation touches.
struct Names {
    bookings: CollectionName,
    tasks: CollectionName,
    templates: CollectionName,
    records: CollectionName,
    properties: CollectionName,
}

impl Names {
    fn new() -> Names {
        use crate::coll as c;
        Names {
            bookings: c("bookings"),
            tasks: c("tasks"),
            templates: c("auto_task_templates"),
            records: c("auto_task_records"),
            properties: c("properties"),
        }
    }
}

/// The hook. Compiled condition expressions are cached by source.
pub struct AutoTasks {
    names: Names,
    exprs: Mutex<HashMap<String, Arc<Expr>>>,
}

impl std::fmt::Debug for AutoTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoTasks").finish_non_exhaustive()
    }
}

impl Default for AutoTasks {
    fn default() -> Self {
        AutoTasks {
            names: Names::new(),
            exprs: Mutex::default(),
        }
    }
}

/// An active booking: live and not cancelled.
fn active(booking: Option<&Value>) -> bool {
    booking
        .is_some_and(|b| is_live(b) && b.get("status").and_then(Value::as_str) != Some("cancelled"))
}

fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

fn date(v: &Value, field: &str) -> Option<NaiveDate> {
    let s = text(v, field)?;
    // `FromStr` reads `%Y-%m-%d` without parsing a format string each time.
    s.get(..10)?.parse().ok()
}

fn id_of(v: &Value) -> Result<RecordId> {
    text(v, "id")
        .and_then(|s| RecordId::parse(s).ok())
        .ok_or_else(|| Error::Invalid {
            what: "record",
            reason: "a stored record without an id".into(),
        })
}

fn nights(booking: &Value) -> i64 {
    match (date(booking, "check_in"), date(booking, "check_out")) {
        (Some(a), Some(b)) => (b - a).num_days(),
        _ => 0,
    }
}

/// Fills `{property.name}`, `{booking.guest_name}`, `{nights}`, `{template.name}`;
/// a missing value renders empty, and the result's spaces are tidied.
pub fn render_title(pattern: &str, booking: &Value, property: &Value, template: &Value) -> String {
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let name = &rest[open + 1..open + close];
        out.push_str(&placeholder(name, booking, property, template).unwrap_or_default());
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn placeholder(name: &str, booking: &Value, property: &Value, template: &Value) -> Option<String> {
    if name == "nights" {
        return Some(nights(booking).to_string());
    }
    let (root, field) = name.split_once('.')?;
    let value = match root {
        "booking" => booking.get(field),
        "property" => property.get(field),
        "template" => template.get(field),
        _ => None,
    }?;
    Some(match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Checks a template's title pattern and condition expression when it is written (and
/// when the admin UI previews an unsaved template).
pub fn check_template(template: &Value) -> std::result::Result<(), String> {
    let pattern = text(template, "title_pattern").unwrap_or_default();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("title_pattern: unclosed {{ in {pattern:?}"))?;
        let name = &rest[open + 1..open + close];
        let known = name == "nights"
            || name.split_once('.').is_some_and(|(root, field)| {
                matches!(root, "booking" | "property" | "template") && !field.is_empty()
            });
        if !known {
            return Err(format!(
                "title_pattern: unknown placeholder {{{name}}} (use {{booking.<field>}}, {{property.<field>}}, {{template.<field>}} or {{nights}})"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if let Some(expr) = template.pointer("/conditions/expr").and_then(Value::as_str) {
        Expr::compile(expr).map_err(|e| format!("conditions.expr: {e}"))?;
    }
    Ok(())
}

impl Hook for AutoTasks {
    fn on_changes(&self, tx: &mut Txn, changes: &[Change]) -> Result<()> {
        if tx.meta().has_tag(NO_AUTOMATION) {
            return Ok(());
        }
        let mut templates: Option<Vec<Arc<Value>>> = None;
        for change in changes {
            if change.collection == self.names.bookings {
                self.booking_changed(tx, change, &mut templates)?;
            } else if change.collection == self.names.tasks {
                self.task_changed(tx, change)?;
            } else if change.collection == self.names.templates
                && let Some(after) = &change.after
            {
                check_template(after).map_err(|reason| Error::Invalid {
                    what: "auto_task_templates",
                    reason,
                })?;
            }
        }
        Ok(())
    }
}

impl AutoTasks {
    fn booking_changed(
        &self,
        tx: &mut Txn,
        change: &Change,
        templates: &mut Option<Vec<Arc<Value>>>,
    ) -> Result<()> {
        if change.action == Action::Purge {
            return Ok(());
        }
        let Some(booking) = &change.after else {
            return Ok(());
        };
        let (was, is) = (active(change.before.as_deref()), active(Some(booking)));
        match (was, is) {
            (false, true) => {
                let templates = match templates {
                    Some(t) => t,
                    None => templates.insert(self.active_templates(tx)),
                };
                self.activate(tx, &change.id, booking, templates)
            }
            (true, true) => {
                let before = change.before.as_ref().expect("was active");
                let moved = ["check_in", "check_out", "property_id"]
                    .iter()
                    .any(|f| before.get(f) != booking.get(f));
                if moved {
                    self.reschedule(tx, &change.id, booking)
                } else {
                    Ok(())
                }
            }
            (true, false) => self.deactivate(tx, &change.id),
            (false, false) => Ok(()),
        }
    }

    /// Live, active templates (read as a whole: a template change re-runs the booking
    /// transaction, so a booking never misses a template committed before it).
    fn active_templates(&self, tx: &mut Txn) -> Vec<Arc<Value>> {
        tx.scan_values(&self.names.templates)
            .iter()
            .filter(|(_, t)| is_live(t) && t.get("active").and_then(Value::as_bool) != Some(false))
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The automation's ledger rows of a booking, with their tasks.
    fn ledger(&self, tx: &mut Txn, booking: &RecordId) -> Result<Vec<(Value, Option<Value>)>> {
        let rows = tx.find(&self.names.records, "booking_id", &json!(booking.as_str()))?;
        let mut out = Vec::with_capacity(rows.len());
        for (_, row) in rows {
            let task = text(&row, "task_id")
                .and_then(|s| RecordId::parse(s).ok())
                .and_then(|id| tx.get_value(&self.names.tasks, &id));
            out.push((row, task));
        }
        Ok(out)
    }

    fn matches(&self, template: &Value, booking: &Value, property: &Value) -> bool {
        let Some(conditions) = template.get("conditions") else {
            return true;
        };
        let listed = |list: &str, field: &str| match conditions.get(list).and_then(Value::as_array)
        {
            Some(items) if !items.is_empty() => {
                let value = booking.get(field);
                items.iter().any(|i| Some(i) == value)
            }
            _ => true,
        };
        if !listed("property_ids", "property_id") || !listed("sources", "source") {
            return false;
        }
        let n = nights(booking);
        if conditions
            .get("min_nights")
            .and_then(Value::as_i64)
            .is_some_and(|min| n < min)
            || conditions
                .get("max_nights")
                .and_then(Value::as_i64)
                .is_some_and(|max| n > max)
        {
            return false;
        }
        let Some(source) = conditions.get("expr").and_then(Value::as_str) else {
            return true;
        };
        let expr = {
            let mut cache = self.exprs.lock();
            match cache.get(source) {
                Some(e) => e.clone(),
                None => match Expr::compile(source) {
                    Ok(e) => cache
                        .entry(source.to_string())
                        .or_insert(Arc::new(e))
                        .clone(),
                    Err(_) => return false,
                },
            }
        };
        let nights = json!(n);
        let vars = Vars::new()
            .with("booking", booking)
            .with("property", property)
            .with("nights", &nights);
        expr.eval_bool(&vars).unwrap_or(false)
    }

    /// When a template's task for this booking is due.
    fn due(template: &Value, booking: &Value) -> Option<String> {
        let base = match text(template, "trigger")? {
            "booking_created" => date(booking, "created_at")?,
            "check_in" => date(booking, "check_in")?,
            "check_out" => date(booking, "check_out")?,
            _ => return None,
        };
        let offset = template
            .get("offset_days")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        Some(
            // `Display` writes `%Y-%m-%d` (years 0 to 9999, what a schema `date` allows).
            base.checked_add_signed(Duration::days(offset))?.to_string(),
        )
    }

    fn activate(
        &self,
        tx: &mut Txn,
        booking_id: &RecordId,
        booking: &Value,
        templates: &[Arc<Value>],
    ) -> Result<()> {
        let ledger = self.ledger(tx, booking_id)?;
        // Reopen what the automation cancelled, moving it if the dates changed meanwhile.
        for (row, task) in &ledger {
            let (Some(task), Some(template)) = (task, self.template_of(tx, row)) else {
                continue;
            };
            if !is_live(task) {
                continue;
            }
            let mut patch = Map::new();
            if task.get("auto_cancelled").and_then(Value::as_bool) == Some(true) {
                patch.insert("status".into(), json!("pending"));
                patch.insert("auto_cancelled".into(), Value::Null);
            }
            self.schedule_patch(&template, booking, task, &mut patch);
            self.patch_task(tx, task, patch)?;
        }
        // Shared: a thousand bookings of an import read a few dozen properties.
        let property = text(booking, "property_id")
            .and_then(|s| RecordId::parse(s).ok())
            .and_then(|id| tx.get_shared(&self.names.properties, &id))
            .unwrap_or_else(|| Arc::new(Value::Null));
        for template in templates {
            let template_id = text(template, "id").unwrap_or_default();
            let done = ledger
                .iter()
                .any(|(row, _)| text(row, "template_id") == Some(template_id));
            if done {
                continue;
            }
            if let Some(task) = self.planned_task(template, booking_id, booking, &property) {
                self.create_task(tx, booking_id, task, template)?;
            }
        }
        Ok(())
    }

    /// The task `template` makes for the booking `booking_id` at `property`, or `None`
    /// when the template's conditions do not hold for it. What the automation writes when
    /// a booking becomes active, and what the admin UI's template preview shows.
    pub fn planned_task(
        &self,
        template: &Value,
        booking_id: &RecordId,
        booking: &Value,
        property: &Value,
    ) -> Option<Value> {
        if !self.matches(template, booking, property) {
            return None;
        }
        let mut task = Map::new();
        let title = render_title(
            text(template, "title_pattern").unwrap_or_default(),
            booking,
            property,
            template,
        );
        let title = if title.is_empty() {
            text(template, "name").unwrap_or("Task").to_string()
        } else {
            title
        };
        task.insert("title".into(), json!(title));
        task.insert(
            "type".into(),
            template
                .get("task_type")
                .cloned()
                .unwrap_or(json!("cleaning")),
        );
        task.insert("status".into(), json!("pending"));
        task.insert("property_id".into(), booking["property_id"].clone());
        task.insert("booking_id".into(), json!(booking_id.as_str()));
        task.insert("template_id".into(), template["id"].clone());
        for (from, to) in [
            ("description", "description"),
            ("assign_to", "assigned_to"),
            ("time_of_day", "time_of_day"),
        ] {
            if let Some(v) = template.get(from).filter(|v| !v.is_null()) {
                task.insert(to.into(), v.clone());
            }
        }
        if let Some(due) = Self::due(template, booking) {
            task.insert("due_at".into(), json!(due));
        }
        Some(Value::Object(task))
    }

    fn create_task(
        &self,
        tx: &mut Txn,
        booking_id: &RecordId,
        task: Value,
        template: &Value,
    ) -> Result<()> {
        let (tasks, records) = (self.names.tasks.clone(), self.names.records.clone());
        tx.with_source(AUTOMATION, |tx| {
            let task_id = tx.insert(&tasks, task)?;
            tx.insert(
                &records,
                json!({
                    "booking_id": booking_id.as_str(),
                    "template_id": template["id"],
                    "task_id": task_id.as_str(),
                }),
            )?;
            Ok(())
        })
    }

    fn template_of(&self, tx: &mut Txn, row: &Value) -> Option<Value> {
        let id = RecordId::parse(text(row, "template_id")?).ok()?;
        tx.get_value(&self.names.templates, &id)
    }

    /// Adds the new due date (and property) to `patch` unless a person owns the schedule
    /// or the task is finished.
    fn schedule_patch(
        &self,
        template: &Value,
        booking: &Value,
        task: &Value,
        patch: &mut Map<String, Value>,
    ) {
        if booking.get("property_id") != task.get("property_id") {
            // The task's booking must be at its property: follow the booking.
            patch.insert("property_id".into(), booking["property_id"].clone());
        }
        let open =
            text(task, "status").is_some_and(|s| OPEN.contains(&s)) || patch.contains_key("status");
        if !open || task.get("schedule_locked").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if let Some(due) = Self::due(template, booking)
            && text(task, "due_at") != Some(due.as_str())
        {
            patch.insert("due_at".into(), json!(due));
        }
    }

    fn patch_task(&self, tx: &mut Txn, task: &Value, patch: Map<String, Value>) -> Result<()> {
        if patch.is_empty() {
            return Ok(());
        }
        let id = id_of(task)?;
        let tasks = self.names.tasks.clone();
        tx.with_source(AUTOMATION, |tx| {
            tx.update(&tasks, &id, &Value::Object(patch), None)
                .map(|_| ())
        })
    }

    fn reschedule(&self, tx: &mut Txn, booking_id: &RecordId, booking: &Value) -> Result<()> {
        for (row, task) in self.ledger(tx, booking_id)? {
            let (Some(task), Some(template)) = (task, self.template_of(tx, &row)) else {
                continue;
            };
            if !is_live(&task) {
                continue;
            }
            let mut patch = Map::new();
            self.schedule_patch(&template, booking, &task, &mut patch);
            self.patch_task(tx, &task, patch)?;
        }
        Ok(())
    }

    fn deactivate(&self, tx: &mut Txn, booking_id: &RecordId) -> Result<()> {
        for (_, task) in self.ledger(tx, booking_id)? {
            let Some(task) = task else { continue };
            let open = text(&task, "status").is_some_and(|s| OPEN.contains(&s));
            if is_live(&task) && open {
                self.patch_task(
                    tx,
                    &task,
                    Map::from_iter([
                        ("status".to_string(), json!("cancelled")),
                        ("auto_cancelled".to_string(), json!(true)),
                    ]),
                )?;
            }
        }
        Ok(())
    }

    /// A person moving an automatic task takes its schedule over.
    fn task_changed(&self, tx: &mut Txn, change: &Change) -> Result<()> {
        if change.action != Action::Update
            || change.source == AUTOMATION
            || change.source == "cascade"
        {
            return Ok(());
        }
        let (Some(before), Some(after)) = (&change.before, &change.after) else {
            return Ok(());
        };
        let automatic = after.get("template_id").is_some_and(|t| !t.is_null());
        let locked = after.get("schedule_locked").and_then(Value::as_bool) == Some(true);
        let moved = ["due_at", "time_of_day"]
            .iter()
            .any(|f| before.get(f) != after.get(f));
        if automatic && moved && !locked {
            self.patch_task(
                tx,
                after,
                Map::from_iter([("schedule_locked".to_string(), json!(true))]),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_fill_placeholders_and_tidy_spaces() {
        let booking =
            json!({"guest_name": "Ann Lee", "check_in": "2026-07-01", "check_out": "2026-07-04"});
        let property = json!({"name": "Loft"});
        let template = json!({"name": "Turnover"});
        assert_eq!(
            render_title(
                "Clean {property.name} after {booking.guest_name}",
                &booking,
                &property,
                &template
            ),
            "Clean Loft after Ann Lee"
        );
        assert_eq!(
            render_title(
                "{template.name}: {nights} nights, {booking.missing} done",
                &booking,
                &property,
                &template
            ),
            "Turnover: 3 nights, done"
        );
        assert_eq!(
            render_title("broken {property.name", &booking, &property, &template),
            "broken {property.name"
        );
    }

    #[test]
    fn templates_are_checked_when_written() {
        assert!(check_template(&json!({"title_pattern": "Clean {property.name}"})).is_ok());
        let err = check_template(&json!({"title_pattern": "Clean {owner}"})).unwrap_err();
        assert!(err.contains("{owner}"), "{err}");
        let err =
            check_template(&json!({"title_pattern": "x", "conditions": {"expr": "nights >"}}))
                .unwrap_err();
        assert!(err.starts_with("conditions.expr"), "{err}");
    }

    #[test]
    fn due_dates_follow_the_trigger_and_offset() {
        let booking = json!({"check_in": "2026-07-01", "check_out": "2026-07-04", "created_at": "2026-06-01T10:00:00.000Z"});
        let t = |trigger: &str, offset: i64| json!({"trigger": trigger, "offset_days": offset});
        assert_eq!(
            AutoTasks::due(&t("check_out", 0), &booking).as_deref(),
            Some("2026-07-04")
        );
        assert_eq!(
            AutoTasks::due(&t("check_in", -1), &booking).as_deref(),
            Some("2026-06-30")
        );
        assert_eq!(
            AutoTasks::due(&t("booking_created", 2), &booking).as_deref(),
            Some("2026-06-03")
        );
    }
}
