//! Lanes across engines, and their controls: pause, resume and concurrency, set in the
//! database for every engine of the queue that runs the lane, shown as applied (or not
//! yet) per engine.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::html::{esc, time_cell, url};
use super::overview::engine_lanes;
use super::Ctx;
use crate::store::dashboard::{self as db, LaneControlRow};
use crate::validate;

pub(crate) async fn page(ctx: &Ctx) -> HttpResponse {
    let conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (engines, controls) = match (
        db::engines(&**conn, ctx.schema()).await,
        db::lane_controls(&**conn, ctx.schema()).await,
    ) {
        (Ok(e), Ok(c)) => (e, c),
        (Err(e), _) | (_, Err(e)) => {
            return ctx.error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("database error: {e}"),
            )
        }
    };
    let now = SystemTime::now();
    let controls: BTreeMap<(String, String), LaneControlRow> = controls
        .into_iter()
        .map(|c| ((c.queue.clone(), c.lane.clone()), c))
        .collect();
    // (queue, lane) -> [(engine, lane as it reports it)]
    let mut lanes: BTreeMap<(String, String), Vec<(String, super::overview::EngineLane)>> =
        BTreeMap::new();
    for e in &engines {
        for l in engine_lanes(e) {
            lanes
                .entry((e.queue.clone(), l.name.clone()))
                .or_default()
                .push((e.worker_id.clone(), l));
        }
    }
    for key in controls.keys() {
        lanes.entry(key.clone()).or_default();
    }
    let b = esc(&ctx.base);
    let mut out = String::from("<p class=\"muted\">Pause, resume and concurrency changes are written to the database: every engine running the lane applies them at its next heartbeat (every few seconds) and reports back here.</p>");
    if lanes.is_empty() {
        out.push_str("<p class=\"muted\">No engine is connected and no lane control is set.</p>");
    }
    for ((queue, lane), runs) in &lanes {
        let control = controls.get(&(queue.clone(), lane.clone()));
        let range = runs
            .first()
            .map(|(_, l)| format!("priorities {}–{}", l.lo, l.hi))
            .unwrap_or_default();
        let _ = write!(out, "<section class=\"lane\" data-lane=\"{l}\"><h2>Lane {l} <span class=\"muted\">queue {q} · {range}</span></h2>", l = esc(lane), q = esc(queue));
        match control {
            Some(c) => {
                let _ = write!(
                    out,
                    "<p>Control v{}: <strong class=\"wish\">{}</strong>{}, set {} by {}</p>",
                    c.version,
                    if c.paused { "paused" } else { "running" },
                    c.concurrency
                        .map(|n| format!(", concurrency {n}"))
                        .unwrap_or_default(),
                    time_cell(c.updated_at, now),
                    esc(c.updated_by.as_deref().unwrap_or("?"))
                );
            }
            None => out.push_str(
                "<p class=\"muted\">No control set: engines run the lane as declared.</p>",
            ),
        }
        if ctx.can_act() {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"{b}/lanes/control\" class=\"actions\">{csrf}\
<input type=\"hidden\" name=\"queue\" value=\"{q}\"><input type=\"hidden\" name=\"lane\" value=\"{l}\">\
<button name=\"op\" value=\"pause\" id=\"pause-{l}\">Pause</button> <button name=\"op\" value=\"resume\" id=\"resume-{l}\">Resume</button> \
<label>Concurrency <input name=\"concurrency\" type=\"number\" min=\"1\" max=\"100000\" class=\"short\"></label> \
<button name=\"op\" value=\"concurrency\">Set</button></form>",
                csrf = ctx.csrf_field(),
                q = esc(queue),
                l = esc(lane),
            );
        }
        if runs.is_empty() {
            out.push_str("<p class=\"muted\">No engine runs this lane right now.</p></section>");
            continue;
        }
        out.push_str("<table><thead><tr><th>Engine</th><th class=\"n\">Slots</th><th class=\"n\">Running</th><th>State</th><th>Control</th></tr></thead><tbody>");
        for (worker, l) in runs {
            let applied = match control {
                None => "—".to_string(),
                Some(c) if l.applied >= c.version => {
                    format!("<span class=\"applied\">applied v{}</span>", c.version)
                }
                Some(c) => format!(
                    "<span class=\"pending\">pending (v{} of v{})</span>",
                    l.applied, c.version
                ),
            };
            let _ = write!(
                out,
                "<tr class=\"engine-lane\"><td><a href=\"{b}/jobs?state=running&amp;queue={qu}\">{w}</a></td><td class=\"n\">{s}</td><td class=\"n\">{r}</td><td>{st}</td><td>{applied}</td></tr>",
                qu = url(queue),
                w = esc(worker),
                s = l.slots,
                r = l.running,
                st = if l.paused { "<span class=\"state s-cancelled\">paused</span>" } else { "<span class=\"state s-running\">active</span>" },
            );
        }
        out.push_str("</tbody></table></section>");
    }
    ctx.html("Lanes", "lanes", &out)
}

pub(crate) async fn control(ctx: &Ctx, form: &[(String, String)]) -> HttpResponse {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    };
    let (queue, lane, op) = (get("queue"), get("lane"), get("op"));
    if let Err(e) =
        validate::identifier("queue", queue).and_then(|_| validate::identifier("lane", lane))
    {
        return ctx.error(StatusCode::BAD_REQUEST, &e.to_string());
    }
    let (paused, concurrency) = match op {
        "pause" => (Some(true), None),
        "resume" => (Some(false), None),
        "concurrency" => match get("concurrency").parse::<i32>() {
            Ok(n) if (1..=100_000).contains(&n) => (None, Some(n)),
            _ => {
                return ctx.error(
                    StatusCode::BAD_REQUEST,
                    "concurrency: a whole number from 1 to 100000 (pause a lane to stop it)",
                )
            }
        },
        _ => {
            return ctx.error(
                StatusCode::BAD_REQUEST,
                "op: use pause, resume or concurrency",
            )
        }
    };
    let conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match db::set_lane_control(
        &**conn,
        ctx.schema(),
        queue,
        lane,
        paused,
        concurrency,
        "dashboard",
    )
    .await
    {
        Ok(v) => ctx.redirect(&format!(
            "/lanes?notice={}",
            url(&format!(
                "Lane {lane}: control v{v} saved; engines apply it at their next heartbeat."
            ))
        )),
        Err(e) => ctx.error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("database error: {e}"),
        ),
    }
}
