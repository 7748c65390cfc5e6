//! The job list (filters, keyset pages, actions) and one job's page.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Deserialize;

use super::filter::{next_cursor, Filter, Order};
use super::html::{dur, esc, num, state_badge, time_cell, url, utc};
use super::Ctx;
use crate::admin::JobState;
use crate::store::dashboard as db;

/// Jobs per page.
pub(crate) const PAGE: i64 = 50;

/// The most ids a filtered newest-first page searches: a filter matching one job in a
/// million would otherwise read the whole table for one page (an args filter on 11M
/// jobs: 0.8 s). A page that ends inside its window links to the next window down.
/// 250,000 ids take 30-70 ms to filter on the benchmark's tables.
pub(crate) const SEARCH_WINDOW: i64 = 250_000;

/// The ids a filtered page searched: from `from` (inclusive) below `below`.
struct Window {
    from: i64,
    below: i64,
}

pub(crate) async fn list(ctx: &Ctx) -> HttpResponse {
    let filter = match Filter::parse(&ctx.query) {
        Ok(f) => f,
        Err(e) => {
            let body = format!(
                "<p class=\"error\" role=\"alert\">Bad filter: {}</p>{}",
                esc(&e.0),
                filter_form(ctx, &Filter::default())
            );
            return ctx.html_status(StatusCode::BAD_REQUEST, "Jobs", "jobs", &body);
        }
    };
    // An id is one job: show it.
    if let (Some(id), true) = (filter.id, ctx.q("go").is_some()) {
        return ctx.redirect(&format!("/jobs/{id}"));
    }
    let conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let window = if filter.searches_a_window() {
        let below = match filter.after {
            db::After::Id(id) => Ok(id),
            _ => db::newest_id(&**conn, ctx.schema()).await.map(|n| n + 1),
        };
        match below {
            // Ids start at 1: a window reaching below that is the whole rest.
            Ok(below) => Some(Window {
                from: below - SEARCH_WINDOW,
                below,
            })
            .filter(|w| w.from > 1),
            Err(e) => {
                return ctx.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("database error: {e}"),
                )
            }
        }
    } else {
        None
    };
    let rows = match db::list(
        &**conn,
        ctx.schema(),
        &filter.params(),
        filter.order == Order::Urgent,
        filter.after,
        PAGE + 1,
        window.as_ref().map(|w| w.from),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            return ctx.error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("database error: {e}"),
            )
        }
    };
    let more = rows.len() as i64 > PAGE;
    let rows = &rows[..rows.len().min(PAGE as usize)];
    let now = SystemTime::now();
    let b = esc(&ctx.base);
    let mut out = filter_form(ctx, &filter);
    // A page that ended inside its window says what it searched and links further down.
    let older = window.filter(|_| !more);
    if let Some(w) = &older {
        let n = rows.len() as i64;
        let _ = write!(
            out,
            "<p class=\"muted\" id=\"search-window\">Searched ids {} to {} (a filtered page \
searches at most {} ids): {} match{}. Older ids may match too: <em>Search older ids</em> \
below the list goes on.</p>",
            num(w.from),
            num(w.below - 1),
            num(SEARCH_WINDOW),
            num(n),
            if n == 1 { "" } else { "es" },
        );
    }
    let act = ctx.can_act();
    if act {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{b}/jobs/action\" id=\"jobs-form\">{}",
            ctx.csrf_field()
        );
        for (k, v) in filter.fields() {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                esc(&v)
            );
        }
        out.push_str("<div class=\"actions\"><span>Selected:</span>");
        for (op, label) in OPS {
            let _ = write!(
                out,
                "<button name=\"do\" value=\"{op}.selected\" data-needs-selection>{label}</button>"
            );
        }
        out.push_str("<span class=\"sep\">All matching the filter:</span>");
        for (op, label) in OPS {
            let _ = write!(
                out,
                "<button name=\"do\" value=\"{op}.filter\">{label} all…</button>"
            );
        }
        out.push_str("</div>");
    }
    out.push_str("<div class=\"scroll\"><table class=\"jobs\"><thead><tr>");
    if act {
        out.push_str("<th><input type=\"checkbox\" id=\"select-all\" aria-label=\"Select every job on this page\"></th>");
    }
    out.push_str("<th class=\"n\">Id</th><th>Kind</th><th>Queue</th><th class=\"n\">Priority</th><th>State</th>\
<th class=\"n\">Attempt</th><th>Due</th><th>Created</th><th>Finished</th><th>Last error</th></tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"11\" class=\"muted\">No jobs match{}.</td></tr>",
            if older.is_some() { " in these ids" } else { "" }
        );
    }
    for j in rows {
        out.push_str("<tr>");
        if act {
            let _ = write!(out, "<td><input type=\"checkbox\" name=\"id\" value=\"{}\" aria-label=\"Select job {}\"></td>", j.id, j.id);
        }
        let err = j
            .last_error
            .as_deref()
            .map(|e| shorten(e, 120))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<td class=\"n\"><a href=\"{b}/jobs/{id}\">{id}</a></td><td>{kind}</td><td>{queue}</td><td class=\"n\">{p}</td>\
<td>{state}</td><td class=\"n\">{a}/{m}</td><td>{due}</td><td>{created}</td><td>{fin}</td><td class=\"err\">{err}</td></tr>",
            id = j.id,
            kind = esc(&j.kind),
            queue = esc(&j.queue),
            p = j.priority,
            state = state_badge(&j.state),
            a = j.attempt,
            m = j.max_attempts,
            due = time_cell(j.run_at, now),
            created = time_cell(j.created_at, now),
            fin = j.finished_at.map(|t| time_cell(t, now)).unwrap_or_default(),
            err = esc(&err),
        );
    }
    out.push_str("</tbody></table></div>");
    if act {
        out.push_str("</form>");
    }
    out.push_str("<nav class=\"pages\">");
    if filter.after != db::After::Start {
        let _ = write!(
            out,
            "<a href=\"{b}/jobs?{}\">« First page</a>",
            esc(&filter.query())
        );
    }
    // The next page: after the last row shown, or, when the page ended inside its
    // search window, below that window.
    let next = match (&older, rows.last()) {
        (Some(w), _) => Some(("Search older ids »", w.from.to_string())),
        (None, Some(last)) if more => Some((
            "Next page »",
            next_cursor(filter.order, last.id, last.priority, last.run_at),
        )),
        _ => None,
    };
    if let Some((label, cursor)) = next {
        let q = filter.query();
        let sep = if q.is_empty() { "" } else { "&" };
        let _ = write!(
            out,
            "<a href=\"{b}/jobs?{}{sep}after={}\" rel=\"next\">{label}</a>",
            esc(&q),
            url(&cursor)
        );
    }
    out.push_str("</nav>");
    ctx.html("Jobs", "jobs", &out)
}

/// The actions on the list: value and label.
const OPS: [(&str, &str); 4] = [
    ("retry", "Retry"),
    ("cancel", "Cancel"),
    ("delete", "Delete"),
    ("run_now", "Run now"),
];

fn filter_form(ctx: &Ctx, f: &Filter) -> String {
    let mut states = String::from("<option value=\"\">any</option>");
    for s in JobState::ALL {
        let sel = if f.state == Some(s) { " selected" } else { "" };
        let _ = write!(
            states,
            "<option value=\"{0}\"{sel}>{0}</option>",
            s.as_str()
        );
    }
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let n = |o: Option<i16>| o.map(|p| p.to_string()).unwrap_or_default();
    let urgent = if f.order == Order::Urgent {
        " selected"
    } else {
        ""
    };
    format!(
        "<form method=\"get\" action=\"{b}/jobs\" class=\"filters\" role=\"search\">\
<label>State <select name=\"state\">{states}</select></label>\
<label>Kind <input name=\"kind\" value=\"{kind}\" maxlength=\"255\"></label>\
<label>Queue <input name=\"queue\" value=\"{queue}\" maxlength=\"63\"></label>\
<label>Priority <span class=\"pair\"><input name=\"pmin\" type=\"number\" min=\"0\" max=\"32767\" value=\"{pmin}\" class=\"short\" aria-label=\"lowest priority\">–\
<input name=\"pmax\" type=\"number\" min=\"0\" max=\"32767\" value=\"{pmax}\" class=\"short\" aria-label=\"highest priority\"></span></label>\
<label>Id <input name=\"id\" type=\"number\" min=\"1\" value=\"{id}\" class=\"short\"></label>\
<label>Unique key <input name=\"key\" value=\"{key}\" maxlength=\"255\"></label>\
<label>Args contain (JSON) <input name=\"args\" value=\"{args}\" placeholder='{{\"to\": \"a@b.c\"}}' maxlength=\"4096\"></label>\
<label>Order <select name=\"order\"><option value=\"newest\">newest first</option><option value=\"urgent\"{urgent}>most urgent first (live jobs)</option></select></label>\
<button type=\"submit\" class=\"primary\">Filter</button> <a href=\"{b}/jobs\">Clear</a></form>",
        b = esc(&ctx.base),
        kind = v(&f.kind),
        queue = v(&f.queue),
        pmin = n(f.priority_min),
        pmax = n(f.priority_max),
        id = f.id.map(|i| i.to_string()).unwrap_or_default(),
        key = v(&f.unique_key),
        args = v(&f.args),
    )
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// One recorded failure (see `outcomes.sql`).
#[derive(Debug, Deserialize)]
struct Failure {
    attempt: Option<i64>,
    at: Option<String>,
    error: Option<String>,
    cause: Option<String>,
}

pub(crate) async fn detail(ctx: &Ctx, id: &str) -> HttpResponse {
    let Some(id) = id.parse::<i64>().ok().filter(|i| *i > 0) else {
        return ctx.error(StatusCode::BAD_REQUEST, "a job id is a whole number from 1");
    };
    let conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let job = match db::job(&**conn, ctx.schema(), id).await {
        Ok(Some(j)) => j,
        Ok(None) => {
            return ctx.error(
                StatusCode::NOT_FOUND,
                &format!("no job {id} (it may have been pruned)"),
            )
        }
        Err(e) => {
            return ctx.error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("database error: {e}"),
            )
        }
    };
    let now = SystemTime::now();
    let j = &job.job;
    let b = esc(&ctx.base);
    let failures: Vec<Failure> = serde_json::from_str(&job.errors).unwrap_or_default();
    let mut out = String::new();
    let _ = write!(
        out,
        "<p>{state} <strong>{kind}</strong> in queue <strong>{queue}</strong>, priority {p}, attempt {a} of {m}</p>",
        state = state_badge(&j.state),
        kind = esc(&j.kind),
        queue = esc(&j.queue),
        p = j.priority,
        a = j.attempt,
        m = j.max_attempts
    );
    if ctx.can_act() {
        let _ = write!(out, "<form method=\"post\" action=\"{b}/jobs/action\" class=\"actions\">{}\
<input type=\"hidden\" name=\"id\" value=\"{id}\"><input type=\"hidden\" name=\"confirm\" value=\"1\">\
<input type=\"hidden\" name=\"back\" value=\"job\">", ctx.csrf_field());
        let can = |op: &str| match op {
            "retry" => matches!(j.state.as_str(), "failed" | "cancelled"),
            "cancel" => matches!(j.state.as_str(), "available" | "scheduled" | "running"),
            "delete" => matches!(j.state.as_str(), "completed" | "failed" | "cancelled"),
            _ => j.state == "scheduled",
        };
        for (op, label) in OPS.iter().filter(|(op, _)| can(op)) {
            let _ = write!(
                out,
                "<button name=\"do\" value=\"{op}.selected\">{label}</button>"
            );
        }
        out.push_str("</form>");
    }
    let _ = write!(
        out,
        "<details open class=\"args\"><summary>Args</summary><pre><code>{}</code></pre></details>",
        esc(&job.args_pretty)
    );

    // Timeline, oldest first.
    let mut events: Vec<(SystemTime, String)> = vec![(j.created_at, "enqueued".into())];
    if j.run_at != j.created_at {
        events.push((
            j.run_at,
            if j.run_at > now {
                "due (scheduled)".into()
            } else {
                "due".into()
            },
        ));
    }
    if let Some(t) = job.started_at {
        events.push((t, format!("attempt {} started", j.attempt)));
    }
    for f in &failures {
        if let Some(t) = f.at.as_deref().and_then(parse_pg_time) {
            events.push((t, format!("attempt {} failed", f.attempt.unwrap_or(0))));
        }
    }
    if let Some(t) = j.finished_at {
        events.push((t, j.state.clone()));
    }
    events.sort_by_key(|e| e.0);
    out.push_str("<h2>Timeline</h2><ol class=\"timeline\">");
    for (t, what) in &events {
        let _ = write!(
            out,
            "<li><span class=\"when\">{}</span> {}</li>",
            time_cell(*t, now),
            esc(what)
        );
    }
    out.push_str("</ol>");

    let _ = write!(out, "<h2>Errors</h2>");
    if failures.is_empty() {
        out.push_str("<p class=\"muted\">No recorded errors.</p>");
    } else {
        out.push_str("<table class=\"errors\"><thead><tr><th class=\"n\">Attempt</th><th>At</th><th>Error</th></tr></thead><tbody>");
        for f in failures.iter().rev() {
            let cause = f
                .cause
                .as_deref()
                .map(|c| format!("<br><span class=\"muted\">cause: {}</span>", esc(c)))
                .unwrap_or_default();
            let _ = write!(
                out,
                "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"error-text\"><pre>{}</pre>{cause}</td></tr>",
                f.attempt.unwrap_or(0),
                esc(f.at.as_deref().unwrap_or("")),
                esc(f.error.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</tbody></table>");
    }

    out.push_str("<h2>Details</h2><dl class=\"facts\">");
    let mut fact = |k: &str, v: String| {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    fact("Id", id.to_string());
    fact("Worker", esc(job.worker_id.as_deref().unwrap_or("—")));
    fact(
        "Lease",
        match job.lease_until {
            Some(t) if j.state == "running" => {
                format!("held until {} ({})", utc(t), esc(&super::html::ago(t, now)))
            }
            _ => "—".into(),
        },
    );
    fact("Unique key", esc(job.unique_key.as_deref().unwrap_or("—")));
    fact(
        "Timeout",
        job.timeout_ms
            .map(|ms| dur(Duration::from_millis(ms as u64)))
            .unwrap_or_else(|| "engine default".into()),
    );
    fact("Rescues", num(i64::from(job.rescues)));
    fact("Due", utc(j.run_at));
    fact("Created", utc(j.created_at));
    let links = |ids: &[i64]| -> String {
        if ids.is_empty() {
            return "—".into();
        }
        let shown: Vec<String> = ids
            .iter()
            .take(50)
            .map(|i| format!("<a href=\"{b}/jobs/{i}\">{i}</a>"))
            .collect();
        match ids.len() {
            n if n > 50 => format!("{} (+{} more)", shown.join(", "), n - 50),
            _ => shown.join(", "),
        }
    };
    fact("Runs after (parents)", links(&j.parents));
    fact("Runs before (children)", links(&j.children));
    out.push_str("</dl>");
    ctx.html(&format!("Job {id}"), "jobs", &out)
}

/// A timestamp as PostgreSQL writes it in JSON (`2026-11-30T16:20:05.123456+00:00`).
fn parse_pg_time(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    (t.timestamp() >= 0).then(|| t.with_timezone(&chrono::Utc).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_json_times_parse() {
        let t = parse_pg_time("2026-11-30T16:20:05.5+00:00").unwrap();
        assert_eq!(utc(t), "2026-11-30 16:20:05Z");
        let t = parse_pg_time("2026-11-30T18:20:05+02:00").unwrap();
        assert_eq!(utc(t), "2026-11-30 16:20:05Z");
        assert!(parse_pg_time("yesterday").is_none());
    }
}
