//! POST actions (CSRF-checked and access-checked by the router): job actions on selected
//! jobs or on every job matching a filter (confirmed first, with a count), enqueue by
//! hand, lane controls.

use std::fmt::Write;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::filter::Filter;
use super::html::{esc, num, url};
use super::pages::enqueue_form;
use super::Ctx;
use crate::store::dashboard::{self as db, After, BulkAction};
use crate::validate;

/// Most ids one form may select.
const MAX_SELECTED: usize = 1000;

/// Most jobs one "all matching" action changes (counted first, and said so).
pub(crate) const MAX_MATCHING: i64 = 100_000;

/// Jobs changed per statement when acting on a filter.
const BATCH: i64 = 1000;

pub(crate) async fn post(ctx: &Ctx, path: &str, form: &[(String, String)]) -> HttpResponse {
    match path {
        "/jobs/action" => job_action(ctx, form).await,
        "/enqueue" => enqueue(ctx, form).await,
        "/lanes/control" => super::lanes::control(ctx, form).await,
        "/schedules/run" => super::schedules::run_now(ctx, form).await,
        _ => ctx.error(StatusCode::NOT_FOUND, "no such action"),
    }
}

fn field<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
    form.iter().find(|(key, _)| key == k).map(|(_, v)| v.trim())
}

fn bulk(op: &str) -> Option<(BulkAction, &'static str, &'static str)> {
    Some(match op {
        "retry" => (BulkAction::Retry, "Retry", "retried"),
        "cancel" => (BulkAction::Cancel, "Cancel", "cancelled"),
        "delete" => (BulkAction::Delete, "Delete", "deleted"),
        "run_now" => (BulkAction::RunNow, "Run now", "made due now"),
        _ => return None,
    })
}

/// What each action applies to, for the confirmation.
fn applies_to(a: BulkAction) -> &'static str {
    match a {
        BulkAction::Retry => "failed and cancelled jobs run again with fresh attempts",
        BulkAction::Cancel => "jobs not started yet are cancelled; running ones are asked to stop, in whatever process they run, and end cancelled",
        BulkAction::Delete => "finished jobs are deleted for good; live jobs are left alone",
        BulkAction::RunNow => "scheduled jobs become due now",
    }
}

/// How long the confirmation may spend counting every matching job before it counts
/// only the newest ids (`jobs::SEARCH_WINDOW`).
const COUNT_BUDGET: std::time::Duration = std::time::Duration::from_millis(60);

/// What a confirmation says an action on every job matching `filter` will change: an
/// exact count (capped at `MAX_MATCHING`), or, when counting would read more rows than
/// `COUNT_BUDGET` allows, a count among the newest ids, said to be a lower bound.
async fn matching(
    conn: &mut crate::store::Conn,
    schema: &str,
    filter: &Filter,
) -> crate::Result<String> {
    let params = filter.params();
    let describe = filter.describe();
    let more_than = |what: &str| {
        format!(
            "more than {} jobs matching {describe}{what} (only the newest {} will be changed; repeat for the rest)",
            num(MAX_MATCHING),
            num(MAX_MATCHING)
        )
    };
    if let Some(n) = db::count_within(conn, schema, &params, MAX_MATCHING + 1, COUNT_BUDGET).await?
    {
        return Ok(if n > MAX_MATCHING {
            more_than("")
        } else {
            format!("{} job{} matching {describe}", num(n), plural(n))
        });
    }
    let c: &tokio_postgres::Client = conn;
    let from = db::newest_id(c, schema).await? + 1 - super::jobs::SEARCH_WINDOW;
    let n = db::count(c, schema, &params, MAX_MATCHING + 1, Some(from)).await?;
    Ok(if n > MAX_MATCHING {
        more_than("")
    } else {
        format!(
            "at least {} job{} matching {describe}: counted among the newest {} ids only \
(counting older ones would read the whole table); the action goes on through the older \
ones too",
            num(n),
            plural(n),
            num(super::jobs::SEARCH_WINDOW)
        )
    })
}

async fn job_action(ctx: &Ctx, form: &[(String, String)]) -> HttpResponse {
    let bad = |m: &str| ctx.error(StatusCode::BAD_REQUEST, m);
    let Some((op, target)) = field(form, "do").and_then(|d| d.split_once('.')) else {
        return bad("which action? (do=retry.selected, cancel.filter, …)");
    };
    let Some((action, label, done)) = bulk(op) else {
        return bad("unknown action: use retry, cancel, delete or run_now");
    };
    let filter = match Filter::parse(form) {
        Ok(f) => f,
        Err(e) => return bad(&format!("bad filter: {}", e.0)),
    };
    let confirmed = field(form, "confirm") == Some("1");
    let mut conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let c: &tokio_postgres::Client = &conn;
    let back_to_job = field(form, "back") == Some("job");
    let list_back = |ctx: &Ctx, notice: String| {
        let q = filter.query();
        let sep = if q.is_empty() { "" } else { "&" };
        ctx.redirect(&format!("/jobs?{q}{sep}notice={}", url(&notice)))
    };
    match target {
        "selected" => {
            let mut ids = Vec::new();
            for (k, v) in form.iter().filter(|(k, _)| k == "id") {
                match v.parse::<i64>() {
                    Ok(id) if id > 0 => ids.push(id),
                    _ => return bad(&format!("{k}: not a job id")),
                }
            }
            if ids.is_empty() {
                return bad("no job selected");
            }
            if ids.len() > MAX_SELECTED {
                return bad(&format!(
                    "at most {MAX_SELECTED} jobs can be selected at once"
                ));
            }
            ids.sort_unstable();
            ids.dedup();
            if !confirmed {
                return confirm(
                    ctx,
                    form,
                    label,
                    action,
                    &format!(
                        "{} selected job{}",
                        num(ids.len() as i64),
                        plural(ids.len() as i64)
                    ),
                );
            }
            match db::apply(c, ctx.schema(), ctx.channel(), action, &ids).await {
                Ok(n) => {
                    let notice = format!(
                        "{} of {} job{} {done}.",
                        num(n as i64),
                        num(ids.len() as i64),
                        plural(ids.len() as i64)
                    );
                    if back_to_job && ids.len() == 1 {
                        ctx.redirect(&format!("/jobs/{}?notice={}", ids[0], url(&notice)))
                    } else {
                        list_back(ctx, notice)
                    }
                }
                Err(e) => ctx.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("database error: {e}"),
                ),
            }
        }
        "filter" => {
            if !confirmed {
                let what = match matching(&mut conn, ctx.schema(), &filter).await {
                    Ok(m) => m,
                    Err(e) => {
                        return ctx.error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            &format!("database error: {e}"),
                        )
                    }
                };
                return confirm(ctx, form, label, action, &what);
            }
            // Walk the matching jobs newest first by id, a batch per statement, so no
            // statement holds many locks or runs long.
            let mut params = filter.params();
            let mut after = After::Start;
            let (mut seen, mut changed) = (0i64, 0u64);
            while seen < MAX_MATCHING {
                let rows = match db::list(c, ctx.schema(), &params, false, after, BATCH, None).await
                {
                    Ok(r) => r,
                    Err(e) => {
                        return ctx.error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            &format!("database error after {changed} changed: {e}"),
                        )
                    }
                };
                let Some(last) = rows.last() else { break };
                after = After::Id(last.id);
                seen += rows.len() as i64;
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                match db::apply(c, ctx.schema(), ctx.channel(), action, &ids).await {
                    Ok(n) => changed += n,
                    Err(e) => {
                        return ctx.error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            &format!("database error after {changed} changed: {e}"),
                        )
                    }
                }
                if (rows.len() as i64) < BATCH {
                    break;
                }
            }
            params.id = None;
            list_back(
                ctx,
                format!(
                    "{} of {} matching job{} {done}.",
                    num(changed as i64),
                    num(seen),
                    plural(seen)
                ),
            )
        }
        _ => bad("target: use selected or filter"),
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The confirmation page: what will happen to how many jobs, and the same form again
/// with `confirm=1`.
fn confirm(
    ctx: &Ctx,
    form: &[(String, String)],
    label: &str,
    action: BulkAction,
    what: &str,
) -> HttpResponse {
    let mut out = format!(
        "<div class=\"confirm\" role=\"alertdialog\" aria-labelledby=\"confirm-q\"><p id=\"confirm-q\" class=\"question\">{} {}?</p>\
<p class=\"muted\">Of those, {}.</p><form method=\"post\" action=\"{}/jobs/action\">",
        esc(label),
        esc(what),
        applies_to(action),
        esc(&ctx.base)
    );
    for (k, v) in form.iter().filter(|(k, _)| k != "confirm") {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            esc(k),
            esc(v)
        );
    }
    let _ = write!(
        out,
        "<input type=\"hidden\" name=\"confirm\" value=\"1\"><button type=\"submit\" class=\"primary danger\" id=\"confirm\" autofocus>{} {}</button> \
<a href=\"{}/jobs\">Back</a></form></div>",
        esc(label),
        esc(what),
        esc(&ctx.base)
    );
    ctx.html("Confirm", "jobs", &out)
}

async fn enqueue(ctx: &Ctx, form: &[(String, String)]) -> HttpResponse {
    let get = |k| field(form, k).unwrap_or("");
    let (kind, args_text, priority_s, queue, delay_s) = (
        get("kind"),
        get("args"),
        get("priority"),
        get("queue"),
        get("delay"),
    );
    let refuse = |m: String| {
        let body = format!(
            "<p class=\"error\" role=\"alert\">{}</p>{}",
            esc(&m),
            enqueue_form(ctx, Some([kind, args_text, priority_s, queue, delay_s]))
        );
        ctx.html_status(StatusCode::BAD_REQUEST, "Enqueue a job", "enqueue", &body)
    };
    if let Err(e) = validate::kind(kind) {
        return refuse(e.to_string());
    }
    let queue = if queue.is_empty() {
        crate::enqueue::DEFAULT_QUEUE
    } else {
        queue
    };
    if let Err(e) = validate::identifier("queue", queue) {
        return refuse(e.to_string());
    }
    let args_text = if args_text.is_empty() {
        "{}"
    } else {
        args_text
    };
    let args: serde_json::Value = match serde_json::from_str(args_text) {
        Ok(v) => v,
        Err(e) => return refuse(format!("args are not JSON: {e}")),
    };
    let priority = match priority_s
        .parse::<i64>()
        .ok()
        .filter(|_| !priority_s.is_empty())
        .or(priority_s
            .is_empty()
            .then_some(i64::from(crate::enqueue::DEFAULT_PRIORITY)))
    {
        Some(p) => match validate::priority(p) {
            Ok(p) => p,
            Err(e) => return refuse(e.to_string()),
        },
        None => return refuse("priority: not a whole number".into()),
    };
    let delay = if delay_s.is_empty() {
        Some(0.0)
    } else {
        delay_s.parse::<f64>().ok()
    };
    let Some(delay) = delay.filter(|d| d.is_finite() && (0.0..=315_360_000.0).contains(d)) else {
        return refuse("delay: seconds from 0 to 10 years".into());
    };
    let conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match db::enqueue(
        &**conn,
        ctx.schema(),
        kind,
        &args,
        i32::from(priority),
        queue,
        delay,
    )
    .await
    {
        Ok(id) => ctx.redirect(&format!(
            "/jobs/{id}?notice={}",
            url(&format!("Job {id} enqueued."))
        )),
        // The SQL function's own checks (the same as the Rust API's): the operator's input.
        Err(e) if e.sqlstate() == Some("22023") => refuse(e.to_string()),
        Err(e) => ctx.error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("database error: {e}"),
        ),
    }
}
