//! Periodic schedules: definition, policy, whether an engine declares it, last and next
//! run; and "run now", which enqueues the schedule's job once without touching its ticks.

use std::fmt::Write;
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::html::{esc, num, time_cell, url};
use super::Ctx;
use crate::store::dashboard as db;

pub(crate) async fn page(ctx: &Ctx) -> HttpResponse {
    let conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let list = match crate::admin::schedules(&**conn, ctx.schema()).await {
        Ok(l) => l,
        Err(e) => {
            return ctx.error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("database error: {e}"),
            )
        }
    };
    let now = SystemTime::now();
    let b = esc(&ctx.base);
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("<p class=\"muted\">No periodic schedules: engines declare them with <code>EngineBuilder::schedule</code>.</p>");
        return ctx.html("Schedules", "schedules", &out);
    }
    out.push_str("<div class=\"scroll\"><table class=\"schedules\"><thead><tr><th>Name</th><th>Cron</th><th>Job</th>\
<th>Missed ticks</th><th>State</th><th>Last run</th><th>Next run</th><th class=\"n\">Runs</th><th class=\"n\">Skipped</th><th></th></tr></thead><tbody>");
    for s in &list {
        let run = if ctx.can_act() {
            format!(
                "<form method=\"post\" action=\"{b}/schedules/run\">{}<input type=\"hidden\" name=\"name\" value=\"{}\">\
<button type=\"submit\">Run now</button></form>",
                ctx.csrf_field(),
                esc(&s.name)
            )
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr data-schedule=\"{n}\"><td>{n}</td><td><code>{cron}</code> {tz}</td>\
<td><a href=\"{b}/jobs?kind={ku}\">{kind}</a> · {queue} · priority {p}</td><td>{missed}</td><td>{state}</td>\
<td>{last}</td><td>{next}</td><td class=\"n\">{runs}</td><td class=\"n\">{skipped}</td><td>{run}</td></tr>",
            n = esc(&s.name),
            cron = esc(&s.cron),
            tz = esc(&s.time_zone),
            ku = url(&s.kind),
            kind = esc(&s.kind),
            queue = esc(&s.queue),
            p = s.priority,
            missed = esc(&s.missed),
            state = if s.active {
                "<span class=\"state s-completed\">active</span>"
            } else {
                "<span class=\"state s-cancelled\">inactive</span>"
            },
            last = s.last_run_at.map(|t| time_cell(t, now)).unwrap_or_else(|| "—".into()),
            next = s.next_run.map(|t| time_cell(t, now)).unwrap_or_else(|| "—".into()),
            runs = num(s.runs),
            skipped = num(s.skipped),
        );
    }
    out.push_str("</tbody></table></div>");
    ctx.html("Schedules", "schedules", &out)
}

pub(crate) async fn run_now(ctx: &Ctx, form: &[(String, String)]) -> HttpResponse {
    let name = form
        .iter()
        .find(|(k, _)| k == "name")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if name.is_empty() || name.len() > 255 {
        return ctx.error(
            StatusCode::BAD_REQUEST,
            "name: the schedule's name (1 to 255 bytes)",
        );
    }
    let conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match db::run_schedule_now(&**conn, ctx.schema(), name).await {
        Ok(Some(id)) => ctx.redirect(&format!(
            "/jobs/{id}?notice={}",
            url(&format!("Schedule {name}: job {id} enqueued to run now."))
        )),
        Ok(None) => ctx.error(StatusCode::NOT_FOUND, &format!("no schedule named {name}")),
        Err(e) if e.sqlstate() == Some("22023") => {
            ctx.error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => ctx.error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("database error: {e}"),
        ),
    }
}
