//! The overview: lanes (from the engines' heartbeats, waiting jobs from the table), the
//! last hour's waits and throughput, jobs per queue and state, the engines connected.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Deserialize;
use tokio_postgres::Client;

use super::chart::{self, Series};
use super::html::{dur, esc, num, time_cell, url};
use super::Ctx;
use crate::admin::JobState;
use crate::error::Result;
use crate::store::dashboard::{self as db, EngineRow};
use crate::store::operator;

/// Waiting jobs are counted up to this many per lane, along the claim index.
pub(crate) const WAITING_CAP: i64 = 10_000;

/// Above this many pages (8 kB each) in the two job tables, counts by state are
/// estimated from table statistics instead of counted.
const EXACT_COUNT_MAX_PAGES: i64 = 5_000;

/// One lane as an engine's heartbeat describes it (see migration 6).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EngineLane {
    pub(crate) name: String,
    pub(crate) lo: i16,
    pub(crate) hi: i16,
    pub(crate) slots: u32,
    pub(crate) running: u32,
    pub(crate) paused: bool,
    #[serde(default)]
    pub(crate) applied: i64,
}

pub(crate) fn engine_lanes(e: &EngineRow) -> Vec<EngineLane> {
    serde_json::from_str(&e.lanes).unwrap_or_default()
}

/// A lane over every engine running it.
#[derive(Debug, Default)]
struct LaneView {
    lo: i16,
    hi: i16,
    slots: u32,
    running: u32,
    engines: u32,
    paused_on: u32,
}

pub(crate) async fn page(ctx: &Ctx) -> HttpResponse {
    let conn = match ctx.conn().await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let started = Instant::now();
    match build(ctx, &conn, started).await {
        Ok(body) => ctx.html("Overview", "overview", &body),
        Err(e) => ctx.error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("database error: {e}"),
        ),
    }
}

async fn build(ctx: &Ctx, c: &Client, started: Instant) -> Result<String> {
    let schema = ctx.schema();
    let now = SystemTime::now();
    let engines = db::engines(c, schema).await?;
    let answered = started.elapsed();
    let mut lanes: BTreeMap<(String, String), LaneView> = BTreeMap::new();
    for e in &engines {
        for l in engine_lanes(e) {
            let v = lanes.entry((e.queue.clone(), l.name.clone())).or_default();
            (v.lo, v.hi) = (l.lo, l.hi);
            v.slots += l.slots;
            v.running += l.running;
            v.engines += 1;
            v.paused_on += u32::from(l.paused);
        }
    }
    let mut out = String::new();

    // Status line.
    let modes: Vec<String> = engines.iter().map(|e| e.listener.clone()).collect();
    let listener = if modes.is_empty() {
        "no engine connected".to_string()
    } else if modes.iter().all(|m| m == "notify") {
        "notify (LISTEN/NOTIFY)".to_string()
    } else {
        format!(
            "{} of {} engines polling only",
            modes.iter().filter(|m| *m != "notify").count(),
            modes.len()
        )
    };
    let _ = write!(
        out,
        "<section class=\"status\"><p><span class=\"dot ok\"></span>Database available \
(answered in {}) · Listener: {} · Engines connected: <strong id=\"engine-count\">{}</strong></p></section>",
        dur(answered),
        esc(&listener),
        engines.len()
    );

    // Lanes.
    out.push_str("<section><h2>Lanes</h2>");
    if lanes.is_empty() {
        out.push_str("<p class=\"muted\">No engine is connected: lanes are declared by engines and appear while one runs.</p>");
    } else {
        out.push_str("<div class=\"scroll\"><table class=\"lanes\"><thead><tr><th>Queue</th><th>Lane</th><th>Priorities</th>\
<th class=\"n\">Slots</th><th class=\"n\">Running</th><th class=\"n\">Waiting</th><th>Oldest wait</th><th>State</th></tr></thead><tbody>");
        for ((queue, name), v) in &lanes {
            let (waiting, oldest) = db::lane_waiting(c, schema, v.lo, v.hi, WAITING_CAP).await?;
            let waiting_s = if waiting >= WAITING_CAP {
                format!(
                    "<span title=\"counted up to {} along the claim index\">≥ {}</span>",
                    num(WAITING_CAP),
                    num(waiting)
                )
            } else {
                num(waiting)
            };
            let oldest_s = match oldest {
                Some(s) if waiting >= WAITING_CAP => {
                    format!("≥ {}", dur(Duration::from_secs_f64(s.max(0.0))))
                }
                Some(s) => dur(Duration::from_secs_f64(s.max(0.0))),
                None => "—".into(),
            };
            let state = match v.paused_on {
                0 => "<span class=\"state s-running\">active</span>".to_string(),
                n if n == v.engines => {
                    "<span class=\"state s-cancelled\">paused</span>".to_string()
                }
                n => format!(
                    "<span class=\"state s-scheduled\">paused on {n} of {}</span>",
                    v.engines
                ),
            };
            let _ = write!(
                out,
                "<tr data-lane=\"{ln}\"><td>{q}</td><td><a href=\"{b}/jobs?pmin={lo}&amp;pmax={hi}&amp;queue={qu}\">{ln}</a></td>\
<td>{lo}–{hi}</td><td class=\"n\">{slots}</td><td class=\"n\">{running}</td><td class=\"n waiting\">{waiting_s}</td>\
<td>{oldest_s}</td><td>{state}</td></tr>",
                q = esc(queue),
                qu = url(queue),
                ln = esc(name),
                b = esc(&ctx.base),
                lo = v.lo,
                hi = v.hi,
                slots = v.slots,
                running = v.running,
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section>");

    // The last hour.
    let ranges: Vec<(String, i16, i16)> = if lanes.is_empty() {
        vec![("all".into(), 0, i16::MAX)]
    } else {
        let mut seen = BTreeMap::new();
        for ((_, name), v) in &lanes {
            seen.entry(name.clone()).or_insert((v.lo, v.hi));
        }
        seen.into_iter().map(|(n, (lo, hi))| (n, lo, hi)).collect()
    };
    let minutes = db::throughput(c, schema, &ranges).await?;
    let now_s = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    out.push_str("<section><h2>The last hour</h2><div class=\"charts\">");
    let mut completed: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for m in &minutes {
        let e = completed.entry(m.minute as i64).or_default();
        e.0 += m.completed as f64;
        e.1 += m.failed as f64;
    }
    let mid = |t: i64| t as f64 + 30.0;
    out.push_str(&chart::last_hour(
        "Jobs finished per minute",
        &[
            Series {
                label: "completed",
                class: "completed",
                points: completed.iter().map(|(t, v)| (mid(*t), v.0)).collect(),
            },
            Series {
                label: "failed",
                class: "failed",
                points: completed.iter().map(|(t, v)| (mid(*t), v.1)).collect(),
            },
        ],
        now_s,
        "",
    ));
    for (name, _, _) in &ranges {
        let of = |p: fn(&db::LaneMinute) -> Option<f64>| -> Vec<(f64, f64)> {
            minutes
                .iter()
                .filter(|m| &m.lane == name)
                .filter_map(|m| Some((mid(m.minute as i64), p(m)?)))
                .collect()
        };
        out.push_str(&chart::last_hour(
            &format!("Lane {name}: wait from due to start"),
            &[
                Series {
                    label: "p50",
                    class: "p50",
                    points: of(|m| m.wait_p50_s),
                },
                Series {
                    label: "p99",
                    class: "p99",
                    points: of(|m| m.wait_p99_s),
                },
            ],
            now_s,
            " s",
        ));
    }
    out.push_str("</div></section>");

    // Jobs by queue and state.
    out.push_str(&queue_table(ctx, c, schema).await?);

    // Engines.
    out.push_str("<section><h2>Engines connected</h2>");
    if engines.is_empty() {
        out.push_str("<p class=\"muted\">None right now. Engines record a heartbeat every few seconds; one that stops disappears.</p>");
    } else {
        out.push_str("<div class=\"scroll\"><table><thead><tr><th>Worker</th><th>Queue</th><th>Started</th><th>Last heartbeat</th>\
<th>Listener</th><th>Database</th><th>Lanes (running / slots)</th></tr></thead><tbody>");
        for e in &engines {
            let lanes: Vec<String> = engine_lanes(e)
                .iter()
                .map(|l| {
                    format!(
                        "{} {}/{}{}",
                        esc(&l.name),
                        l.running,
                        l.slots,
                        if l.paused { " (paused)" } else { "" }
                    )
                })
                .collect();
            let _ = write!(
                out,
                "<tr class=\"engine\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.worker_id),
                esc(&e.queue),
                time_cell(e.started_at, now),
                time_cell(e.seen_at, now),
                esc(&e.listener),
                if e.database_ok { "available" } else { "unavailable" },
                lanes.join(", ")
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section>");
    Ok(out)
}

/// Jobs per queue and state: counted when the tables are small, estimated from table
/// statistics (and labelled so) when counting would scan millions of rows.
async fn queue_table(ctx: &Ctx, c: &Client, schema: &str) -> Result<String> {
    let sizes = db::table_sizes(c, schema).await?;
    let b = esc(&ctx.base);
    let mut out = String::from("<section><h2>Jobs by queue and state</h2>");
    let head = |out: &mut String, first: &str| {
        let _ = write!(
            out,
            "<div class=\"scroll\"><table class=\"counts\"><thead><tr><th>{first}</th>"
        );
        for s in JobState::ALL {
            let _ = write!(
                out,
                "<th class=\"n\">{}</th>",
                crate::dashboard::html::state_badge(s.as_str())
            );
        }
        out.push_str("</tr></thead><tbody>");
    };
    if sizes.live_pages + sizes.finished_pages <= EXACT_COUNT_MAX_PAGES {
        let rows = operator::queue_counts(c, schema).await?;
        let mut queues: BTreeMap<String, [i64; JobState::ALL.len()]> = BTreeMap::new();
        for r in rows {
            let i = JobState::ALL.iter().position(|s| s.as_str() == r.state);
            if let Some(i) = i {
                queues.entry(r.queue).or_default()[i] += r.jobs;
            }
        }
        head(&mut out, "Queue");
        if queues.is_empty() {
            out.push_str("<tr><td colspan=\"7\" class=\"muted\">No jobs.</td></tr>");
        }
        for (q, counts) in &queues {
            let _ = write!(out, "<tr data-queue=\"{}\"><td>{}</td>", esc(q), esc(q));
            for (i, s) in JobState::ALL.iter().enumerate() {
                let _ = write!(
                    out,
                    "<td class=\"n\" data-state=\"{st}\"><a href=\"{b}/jobs?queue={qu}&amp;state={st}\">{n}</a></td>",
                    st = s.as_str(),
                    qu = url(q),
                    n = num(counts[i])
                );
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div><p class=\"muted\">Exact counts.</p>");
    } else {
        let est = db::state_estimates(c, schema).await?;
        let mut counts = [0f64; JobState::ALL.len()];
        for (_, state, n) in est {
            if let Some(i) = JobState::ALL.iter().position(|s| s.as_str() == state) {
                counts[i] += n;
            }
        }
        head(&mut out, "All queues");
        out.push_str("<tr><td>all</td>");
        for (i, s) in JobState::ALL.iter().enumerate() {
            let _ = write!(
                out,
                "<td class=\"n estimate\" data-state=\"{st}\"><a href=\"{b}/jobs?state={st}\">≈ {n}</a></td>",
                st = s.as_str(),
                n = num(counts[i].round() as i64)
            );
        }
        let _ = write!(
            out,
            "</tr></tbody></table></div><p class=\"muted\">≈ Estimates from table statistics \
(the job tables hold about {} rows; counting them exactly would scan them all). Scheduled jobs \
are counted with available ones here.</p>",
            num((sizes.live_rows + sizes.finished_rows).round() as i64)
        );
    }
    out.push_str("</section>");
    Ok(out)
}
