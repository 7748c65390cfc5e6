//! The dashboard on big tables: fills a schema with 10 million finished jobs and 1
//! million waiting ones (once; kept for later runs), then times each dashboard request,
//! in process (actix-web's test service, the handler and its database work, no network).
//!
//! ```text
//! cargo bench --bench dashboard -- run                        # 10M finished + 1M waiting
//! cargo bench --bench dashboard -- run --finished 100000 --waiting 10000   # a quick look
//! cargo bench --bench dashboard -- run --refill               # drop and fill again
//! ```
//!
//! Plain `cargo bench` (and `cargo test --benches`) runs nothing. The database is
//! `DATABASE_URL` or pglane's default; the schema is `pglane_dash_bench_<finished>_<waiting>`.

use std::time::{Duration, Instant};

use actix_web::{test, App};
use pglane::dashboard::Dashboard;
use tokio_postgres::NoTls;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    finished: i64,
    waiting: i64,
    refill: bool,
    runs: usize,
}

fn args() -> Option<Args> {
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut a = Args {
        finished: 10_000_000,
        waiting: 1_000_000,
        refill: false,
        runs: 7,
    };
    let mut run = false;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "run" => run = true,
            "--finished" => a.finished = it.next()?.parse().ok()?,
            "--waiting" => a.waiting = it.next()?.parse().ok()?,
            "--runs" => a.runs = it.next()?.parse().ok()?,
            "--refill" => a.refill = true,
            _ => {}
        }
    }
    run.then_some(a)
}

fn main() {
    let Some(args) = args() else {
        eprintln!("dashboard: nothing to do (plain `cargo bench` runs nothing); use `cargo bench --bench dashboard -- run`");
        return;
    };
    if let Err(e) = actix::System::new().block_on(bench(args)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn bench(a: Args) -> BoxResult<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| pglane::admin::DEFAULT_DATABASE_URL.into());
    let schema = format!("pglane_dash_bench_{}_{}", a.finished, a.waiting);
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await?;
    actix_rt::spawn(conn);
    if a.refill {
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await?;
    }
    pglane::migrate(url.as_str(), &schema).await?;
    let have: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM (SELECT 1 FROM \"{schema}\".jobs_finished LIMIT 1) x"),
            &[],
        )
        .await?
        .get(0);
    if have == 0 {
        fill(&client, &schema, a.finished, a.waiting).await?;
    }
    // An engine's heartbeat, as if one ran lanes urgent and bulk (alive for an hour).
    client
        .execute(
            &format!(
                "INSERT INTO \"{schema}\".engines (worker_id, queue, interval_ms, listener, database_ok, lanes)
                 VALUES ('bench', 'default', 3600000, 'notify', true,
                   '[{{\"name\":\"urgent\",\"lo\":0,\"hi\":9,\"slots\":8,\"running\":0,\"paused\":false}},
                     {{\"name\":\"bulk\",\"lo\":10,\"hi\":32767,\"slots\":16,\"running\":0,\"paused\":false}}]')
                 ON CONFLICT (worker_id) DO UPDATE SET seen_at = now()"
            ),
            &[],
        )
        .await?;

    let dash = Dashboard::connect(url.as_str(), &schema)?;
    let app = test::init_service(App::new().service(dash.scope("/d"))).await;
    // The CSRF cookie and token, for the confirmation request.
    let first =
        test::call_service(&app, test::TestRequest::get().uri("/d/jobs").to_request()).await;
    let token = first
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("pglane_csrf="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    let detail_id = a.finished / 2;
    let cursor = a.finished + a.waiting / 2;
    let gets = [
        ("overview", "/d/".to_string()),
        ("jobs, newest first", "/d/jobs".into()),
        (
            "jobs, page after a cursor",
            format!("/d/jobs?after={cursor}"),
        ),
        ("jobs, state=failed", "/d/jobs?state=failed".into()),
        ("jobs, state=cancelled", "/d/jobs?state=cancelled".into()),
        ("jobs, state=running (none)", "/d/jobs?state=running".into()),
        (
            "jobs, state=available, most urgent first",
            "/d/jobs?state=available&order=urgent".into(),
        ),
        (
            "jobs, kind=sync_crm, queue=mail",
            "/d/jobs?kind=sync_crm&queue=mail".into(),
        ),
        ("jobs, priority 0-9", "/d/jobs?pmin=0&pmax=9".into()),
        (
            "jobs, args contain {\"user\": 4242}",
            "/d/jobs?args=%7B%22user%22%3A4242%7D".into(),
        ),
        (
            "jobs, args contain {\"user\": 4242}, older ids",
            format!(
                "/d/jobs?args=%7B%22user%22%3A4242%7D&after={}",
                a.finished / 2
            ),
        ),
        (
            "jobs, args, most urgent first",
            "/d/jobs?args=%7B%22user%22%3A4242%7D&order=urgent".into(),
        ),
        ("jobs, unique key", "/d/jobs?key=order-5000".into()),
        ("job detail", format!("/d/jobs/{detail_id}")),
        ("lanes", "/d/lanes".into()),
        ("schedules", "/d/schedules".into()),
    ];
    println!(
        "Dashboard requests on {} finished + {} waiting jobs (schema {schema}), {} runs each:\n",
        a.finished, a.waiting, a.runs
    );
    println!("| request | status | median | max |");
    println!("|---|---|---|---|");
    for (name, path) in &gets {
        let (status, times) = time(&app, a.runs, || {
            test::TestRequest::get()
                .uri(path)
                .insert_header(("cookie", format!("pglane_csrf={token}")))
        })
        .await;
        report(name, status, times);
    }
    // The confirmations of "cancel every job matching …": counted (capped, or within a
    // time budget and then among the newest ids).
    for (name, filter) in [
        (
            "confirm: cancel all matching state=available (count capped at 100,001)",
            "state=available",
        ),
        (
            "confirm: cancel all matching args {\"user\": 4242} (count within 60 ms, then the newest ids)",
            "args=%7B%22user%22%3A4242%7D",
        ),
    ] {
        let (status, times) = time(&app, a.runs, || {
            test::TestRequest::post()
                .uri("/d/jobs/action")
                .insert_header(("cookie", format!("pglane_csrf={token}")))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(format!("csrf={token}&do=cancel.filter&{filter}"))
        })
        .await;
        report(name, status, times);
    }
    Ok(())
}

/// Sends the request `make` builds `runs` times, reading each body: the last status and
/// every request's time.
async fn time<S, B>(
    app: &S,
    runs: usize,
    make: impl Fn() -> test::TestRequest,
) -> (u16, Vec<Duration>)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let mut times = Vec::new();
    let mut status = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = test::call_service(app, make().to_request()).await;
        status = r.status().as_u16();
        let _ = test::read_body(r).await;
        times.push(t.elapsed());
    }
    (status, times)
}

fn report(name: &str, status: u16, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {name} | {status} | {} | {} |",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

/// Fills the tables in one statement each: finished jobs spread over the last days (50
/// ms apart, so the last hour holds 72,000), 1% failed, 0.4% cancelled; waiting jobs due
/// within the last hour, priorities 0-199.
async fn fill(c: &tokio_postgres::Client, s: &str, finished: i64, waiting: i64) -> BoxResult<()> {
    let t = Instant::now();
    eprintln!("filling {s}: {finished} finished, {waiting} waiting…");
    c.batch_execute("SET synchronous_commit = off").await?;
    c.execute(
        &format!(
            "INSERT INTO \"{s}\".jobs_finished (id, kind, queue, priority, args, state, attempt, max_attempts,
               run_at, worker_id, rescues, errors, created_at, started_at, finished_at)
             SELECT g, (ARRAY['send_email','render_report','sync_crm','resize_image'])[1 + g % 4],
               CASE WHEN g % 10 = 0 THEN 'mail' ELSE 'default' END, (g % 200)::smallint,
               jsonb_build_object('user', g % 100000, 'n', g),
               CASE WHEN g % 100 = 0 THEN 'failed' WHEN g % 250 = 0 THEN 'cancelled' ELSE 'completed' END,
               1, 20, ts - interval '2 seconds', 'bench', 0,
               CASE WHEN g % 100 = 0 THEN '[{{\"attempt\": 1, \"error\": \"boom\"}}]'::jsonb ELSE '[]'::jsonb END,
               ts - interval '3 seconds', ts - interval '1 second' + (g % 7) * interval '100 ms', ts
             FROM generate_series(1, $1::bigint) g,
                  LATERAL (SELECT now() - ($1::bigint - g) * interval '50 milliseconds' AS ts) t"
        ),
        &[&finished],
    )
    .await?;
    c.execute(
        &format!(
            "INSERT INTO \"{s}\".jobs (id, kind, queue, priority, args, run_at, unique_key, created_at)
             OVERRIDING SYSTEM VALUE
             SELECT $1::bigint + g, (ARRAY['send_email','render_report','sync_crm','resize_image'])[1 + g % 4],
               CASE WHEN g % 10 = 0 THEN 'mail' ELSE 'default' END, (g % 200)::smallint,
               jsonb_build_object('user', g % 100000, 'n', g), now() - (g % 3600) * interval '1 second',
               CASE WHEN g % 1000 = 0 THEN 'order-' || g END, now() - interval '1 hour'
             FROM generate_series(1, $2::bigint) g"
        ),
        &[&finished, &waiting],
    )
    .await?;
    c.execute(
        &format!("SELECT setval(pg_get_serial_sequence('\"{s}\".jobs', 'id'), $1::bigint)"),
        &[&(finished + waiting + 1)],
    )
    .await?;
    // One statement per call: VACUUM cannot run inside the implicit transaction of a
    // multi-statement string.
    for table in ["jobs", "jobs_finished"] {
        c.batch_execute(&format!("VACUUM ANALYZE \"{s}\".{table}"))
            .await?;
    }
    eprintln!("filled in {:.0?}", t.elapsed());
    Ok(())
}
