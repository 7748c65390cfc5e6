//! The job list's filter and page cursor, parsed from query or form fields and checked
//! before anything reaches the database: a bad value is a clear 400, never a query.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use crate::admin::JobState;
use crate::store::dashboard::{After, FilterParams};
use crate::validate;

use super::html::url;

/// The longest `args` filter accepted, in bytes of JSON text.
pub(crate) const MAX_ARGS_FILTER_BYTES: usize = 4096;

/// The longest value of any other field accepted, in bytes.
const MAX_FIELD_BYTES: usize = 1024;

/// The list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Order {
    /// Newest (highest id) first, live and finished jobs.
    #[default]
    Newest,
    /// Most urgent first (`priority, run_at, id`), live jobs only.
    Urgent,
}

/// What the job list shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filter {
    pub(crate) state: Option<JobState>,
    pub(crate) kind: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) priority_min: Option<i16>,
    pub(crate) priority_max: Option<i16>,
    pub(crate) id: Option<i64>,
    pub(crate) unique_key: Option<String>,
    /// JSON text; the list shows jobs whose args contain this value (`@>`).
    pub(crate) args: Option<String>,
    pub(crate) order: Order,
    pub(crate) after: After,
}

/// A field that could not be accepted, with the reason shown to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadField(pub(crate) String);

fn bad(field: &str, why: impl std::fmt::Display) -> BadField {
    BadField(format!("{field}: {why}"))
}

impl Filter {
    /// Reads the filter's fields from `pairs` (a query string or form); other fields are
    /// ignored, empty ones mean "any".
    pub(crate) fn parse(pairs: &[(String, String)]) -> Result<Filter, BadField> {
        let mut f = Filter::default();
        let mut after: Option<&str> = None;
        for (k, v) in pairs {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let limit = if k == "args" {
                MAX_ARGS_FILTER_BYTES
            } else {
                MAX_FIELD_BYTES
            };
            if v.len() > limit {
                return Err(bad(k, format_args!("longer than {limit} bytes")));
            }
            match k.as_str() {
                "state" => f.state = Some(v.parse().map_err(|e| bad(k, e))?),
                "kind" => {
                    validate::kind(v).map_err(|e| bad(k, e))?;
                    f.kind = Some(v.to_string());
                }
                "queue" => {
                    validate::identifier("queue", v).map_err(|e| bad(k, e))?;
                    f.queue = Some(v.to_string());
                }
                "pmin" => f.priority_min = Some(priority(k, v)?),
                "pmax" => f.priority_max = Some(priority(k, v)?),
                "id" => {
                    let id: i64 = v.parse().map_err(|_| bad(k, "not a whole number"))?;
                    if id < 1 {
                        return Err(bad(k, "ids start at 1"));
                    }
                    f.id = Some(id);
                }
                "key" => {
                    validate::unique_key(v).map_err(|e| bad(k, e))?;
                    f.unique_key = Some(v.to_string());
                }
                "args" => {
                    let value: serde_json::Value = serde_json::from_str(v)
                        .map_err(|e| bad(k, format_args!("not JSON ({e})")))?;
                    let text = value.to_string();
                    // jsonb cannot hold NUL: the database would refuse the query.
                    if text.contains("\\u0000") {
                        return Err(bad(k, "JSON text must not contain \\u0000"));
                    }
                    f.args = Some(text);
                }
                "order" => {
                    f.order = match v {
                        "newest" => Order::Newest,
                        "urgent" => Order::Urgent,
                        _ => return Err(bad(k, "use newest or urgent")),
                    }
                }
                "after" => after = Some(v),
                _ => {}
            }
        }
        if let (Some(lo), Some(hi)) = (f.priority_min, f.priority_max) {
            if lo > hi {
                return Err(bad("pmin", "higher than pmax"));
            }
        }
        if let Some(a) = after {
            f.after = cursor(f.order, a).ok_or_else(|| bad("after", "not a page cursor"))?;
        }
        Ok(f)
    }

    /// The values the statements take.
    pub(crate) fn params(&self) -> FilterParams {
        FilterParams {
            state: self.state.map(|s| s.as_str().to_string()),
            kind: self.kind.clone(),
            queue: self.queue.clone(),
            priority_min: self.priority_min.map(i32::from),
            priority_max: self.priority_max.map(i32::from),
            id: self.id,
            unique_key: self.unique_key.clone(),
            // INVARIANT: `args` was parsed from this very text in `parse`.
            args: self
                .args
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok()),
        }
    }

    /// The filter as `(field, value)` pairs, without the cursor.
    pub(crate) fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut push = |k, v: Option<String>| {
            if let Some(v) = v {
                out.push((k, v));
            }
        };
        push("state", self.state.map(|s| s.as_str().to_string()));
        push("kind", self.kind.clone());
        push("queue", self.queue.clone());
        push("pmin", self.priority_min.map(|p| p.to_string()));
        push("pmax", self.priority_max.map(|p| p.to_string()));
        push("id", self.id.map(|i| i.to_string()));
        push("key", self.unique_key.clone());
        push("args", self.args.clone());
        if self.order == Order::Urgent {
            push("order", Some("urgent".into()));
        }
        out
    }

    /// The filter as a query string (no leading `?`), without the cursor.
    pub(crate) fn query(&self) -> String {
        let mut q = String::new();
        for (k, v) in self.fields() {
            if !q.is_empty() {
                q.push('&');
            }
            let _ = write!(q, "{k}={}", url(&v));
        }
        q
    }

    /// Whether a newest-first page searches a bounded window of ids: any filter but an
    /// id may match few rows, and a page would then read every row older than its
    /// matches (see `jobs::SEARCH_WINDOW`). The urgent order reads live jobs only.
    pub(crate) fn searches_a_window(&self) -> bool {
        let narrows = self.state.is_some()
            || self.kind.is_some()
            || self.queue.is_some()
            || self.priority_min.is_some()
            || self.priority_max.is_some()
            || self.unique_key.is_some()
            || self.args.is_some();
        self.order == Order::Newest && self.id.is_none() && narrows
    }

    /// A short description for confirmations: `state=failed, kind=send_email`.
    pub(crate) fn describe(&self) -> String {
        let parts: Vec<String> = self
            .fields()
            .into_iter()
            .filter(|(k, _)| *k != "order")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if parts.is_empty() {
            "every job".into()
        } else {
            parts.join(", ")
        }
    }
}

fn priority(field: &str, v: &str) -> Result<i16, BadField> {
    let p: i64 = v.parse().map_err(|_| bad(field, "not a whole number"))?;
    validate::priority(p).map_err(|e| bad(field, e))
}

/// The cursor of the page after `last`, for the list's order.
pub(crate) fn next_cursor(order: Order, id: i64, priority: i16, run_at: SystemTime) -> String {
    match order {
        Order::Newest => id.to_string(),
        Order::Urgent => {
            let micros = run_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0);
            format!("{priority}.{micros}.{id}")
        }
    }
}

fn cursor(order: Order, s: &str) -> Option<After> {
    match order {
        Order::Newest => s.parse().ok().filter(|id| *id > 0).map(After::Id),
        Order::Urgent => {
            let mut it = s.split('.');
            let p: i16 = it.next()?.parse().ok()?;
            let micros: u64 = it.next()?.parse().ok()?;
            let id: i64 = it.next()?.parse().ok()?;
            if it.next().is_some() || p < 0 {
                return None;
            }
            let at = SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(micros))?;
            Some(After::Urgent(p, at, id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_full_filter_parses_and_round_trips_through_its_query() {
        let f = Filter::parse(&pairs(&[
            ("state", "failed"),
            ("kind", "send_email"),
            ("queue", "mail"),
            ("pmin", "0"),
            ("pmax", "9"),
            ("key", "order-7"),
            ("args", r#"{ "to": "a@b.c" }"#),
            ("order", "urgent"),
            ("unknown", "ignored"),
            ("id", ""),
        ]))
        .unwrap();
        assert_eq!(f.state, Some(JobState::Failed));
        assert_eq!(f.args.as_deref(), Some(r#"{"to":"a@b.c"}"#));
        assert_eq!(
            (f.priority_min, f.priority_max, f.id),
            (Some(0), Some(9), None)
        );
        let again: Vec<(String, String)> = serde_urlencoded::from_str(&f.query()).unwrap();
        assert_eq!(Filter::parse(&again).unwrap(), f);
        assert_eq!(
            Filter::parse(&[]).unwrap().params(),
            FilterParams::default()
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let refuse = |k: &str, v: &str| Filter::parse(&pairs(&[(k, v)])).unwrap_err().0;
        assert!(refuse("state", "done").starts_with("state:"));
        assert!(refuse("kind", "x'; DROP TABLE jobs; --").starts_with("kind:"));
        assert!(refuse("queue", "Mail").starts_with("queue:"));
        assert!(refuse("pmin", "-1").starts_with("pmin:"));
        assert!(refuse("pmax", "99999999999999999999").starts_with("pmax:"));
        assert!(refuse("id", "0").starts_with("id:"));
        assert!(refuse("id", "1 OR 1=1").starts_with("id:"));
        assert!(refuse("args", "{not json").starts_with("args:"));
        assert!(refuse("args", r#"{"a":"\u0000"}"#).starts_with("args:"));
        assert!(refuse("args", &format!("\"{}\"", "x".repeat(5000))).contains("longer than"));
        assert!(refuse("key", &"k".repeat(2000)).contains("longer than"));
        assert!(refuse("order", "random").starts_with("order:"));
        assert!(refuse("after", "abc").starts_with("after:"));
        let e = Filter::parse(&pairs(&[("pmin", "10"), ("pmax", "5")])).unwrap_err();
        assert!(e.0.contains("higher than pmax"));
    }

    #[test]
    fn cursors_round_trip_for_both_orders() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let c = next_cursor(Order::Urgent, 42, 7, at);
        assert_eq!(cursor(Order::Urgent, &c), Some(After::Urgent(7, at, 42)));
        assert_eq!(
            cursor(Order::Newest, &next_cursor(Order::Newest, 42, 7, at)),
            Some(After::Id(42))
        );
        assert_eq!(cursor(Order::Urgent, "1.2.3.4"), None);
        assert_eq!(cursor(Order::Newest, "-5"), None);
    }
}
