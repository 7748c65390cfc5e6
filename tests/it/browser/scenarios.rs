//! The browser scenarios (see the module's notes).

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{App, HttpServer};
use fantoccini::Locator;
use pglane::dashboard::Dashboard;
use pglane::{Enqueue, Lane};

use super::engine_process::{EngineProcess, Flaky, Healthy, Work};
use super::{browser, check, Browser, Step};
use crate::support::*;

/// Serves `dashboard` under `/admin/jobs` on a free port; returns its base URL and the
/// server's handle.
fn serve(dashboard: Dashboard) -> (String, actix_web::dev::ServerHandle) {
    let server =
        HttpServer::new(move || App::new().service(dashboard.clone().scope("/admin/jobs")))
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (format!("http://{addr}/admin/jobs"), handle)
}

async fn count(db: &TestDb, sql_where: &str) -> i64 {
    db.count(sql_where).await
}

#[actix_rt::test]
async fn browser_overview_filter_error_retry_and_cancel_all_matching() {
    let Some(b) = browser("overview_filter_retry_cancel").await else {
        return;
    };
    let db = TestDb::new().await;
    let healthy = Healthy::default();
    let engine = db
        .engine()
        .heartbeat_interval(Duration::from_millis(200))
        .lane(Lane::new("urgent").priorities(0..).concurrency(4))
        .register::<Work>()
        .register::<Flaky>()
        .data(healthy.clone())
        .start()
        .await
        .unwrap();
    let flaky = engine
        .enqueue(Enqueue::new(Flaky {}).priority(1).max_attempts(1))
        .await
        .unwrap();
    for _ in 0..5 {
        engine
            .enqueue(Enqueue::new(Work {}).priority(2))
            .await
            .unwrap();
    }
    db.wait_count("state = 'completed'", 5, Duration::from_secs(20))
        .await;
    db.wait_count("state = 'failed'", 1, Duration::from_secs(20))
        .await;
    let (base, server) = serve(Dashboard::for_engine(&engine));
    let shots = std::env::var("PGLANE_SCREENSHOTS").ok();

    b.run(async {
        // The overview's counts match the database.
        b.goto(&format!("{base}/")).await?;
        for state in ["completed", "failed", "available"] {
            let shown = b
                .text(&format!(
                    "tr[data-queue=\"default\"] td[data-state=\"{state}\"]"
                ))
                .await?;
            let want = count(&db, &format!("queue = 'default' AND state = '{state}'")).await;
            check(
                shown == want.to_string(),
                format!("overview shows {shown} {state}, the database has {want}"),
            )?;
        }
        check(
            b.page().await?.contains("data-lane=\"urgent\""),
            "the urgent lane is listed",
        )?;

        // Filter to failed jobs.
        b.goto(&format!("{base}/jobs")).await?;
        let select = b
            .client
            .find(Locator::Css("form.filters select[name=state]"))
            .await
            .map_err(|e| e.to_string())?;
        select
            .select_by_value("failed")
            .await
            .map_err(|e| e.to_string())?;
        b.click("form.filters button[type=submit]").await?;
        let states = b
            .client
            .find_all(Locator::Css("table.jobs tbody .state"))
            .await
            .map_err(|e| e.to_string())?;
        check(
            states.len() == 1,
            format!("{} rows after filtering to failed", states.len()),
        )?;
        check(
            states[0].text().await.map_err(|e| e.to_string())? == "failed",
            "the row is failed",
        )?;

        // Open it and read its error.
        b.click(&format!("table.jobs tbody a[href$=\"/jobs/{flaky}\"]"))
            .await?;
        let error = b.text("td.error-text").await?;
        check(
            error.contains("the mail server is not healthy"),
            format!("error shown: {error}"),
        )?;

        // Retry it and see it complete.
        healthy.0.store(true, Ordering::SeqCst);
        b.click("button[value=\"retry.selected\"]").await?;
        check(
            b.text("p.notice").await?.contains("1 of 1 job retried"),
            "the retry is confirmed",
        )?;
        b.until(
            &format!("{base}/jobs/{flaky}"),
            "the retried job completed",
            Duration::from_secs(20),
            |p| p.contains("class=\"state s-completed\""),
        )
        .await?;

        // Select every job matching a filter and cancel them, after a confirmation with
        // the count.
        for _ in 0..25 {
            engine
                .enqueue(
                    Enqueue::new(Work {})
                        .queue("later")
                        .delay(Duration::from_secs(3600)),
                )
                .await
                .unwrap();
        }
        b.goto(&format!("{base}/jobs?queue=later")).await?;
        b.click("button[value=\"cancel.filter\"]").await?;
        let question = b.text("#confirm-q").await?;
        check(
            question.contains("Cancel 25 jobs matching queue=later?"),
            format!("confirmation: {question}"),
        )?;
        check(
            count(&db, "queue = 'later' AND state = 'cancelled'").await == 0,
            "nothing cancelled before confirming",
        )?;
        b.click("#confirm").await?;
        let notice = b.text("p.notice").await?;
        check(
            notice.contains("25 of 25 matching jobs cancelled"),
            format!("notice: {notice}"),
        )?;
        check(
            count(&db, "queue = 'later' AND state = 'cancelled'").await == 25,
            "25 cancelled in the database",
        )?;

        if let Some(dir) = &shots {
            readme_screenshots(&b, &base, dir).await?;
        }
        Ok(())
    })
    .await;
    server.stop(true).await;
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// The README's pictures: the overview in light and dark.
async fn readme_screenshots(b: &Browser, base: &str, dir: &str) -> Step {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    b.goto(&format!("{base}/")).await?;
    // The theme button cycles auto → light → dark.
    b.press("#theme").await?;
    let light = b.client.screenshot().await.map_err(|e| e.to_string())?;
    std::fs::write(format!("{dir}/dashboard-light.png"), light).map_err(|e| e.to_string())?;
    b.press("#theme").await?;
    let dark = b.client.screenshot().await.map_err(|e| e.to_string())?;
    std::fs::write(format!("{dir}/dashboard-dark.png"), dark).map_err(|e| e.to_string())?;
    b.press("#theme").await?;
    Ok(())
}

#[actix_rt::test]
async fn browser_pausing_a_lane_stops_another_engine_process_claiming() {
    let Some(b) = browser("pause_lane_other_process").await else {
        return;
    };
    let db = TestDb::new().await;
    let other = EngineProcess::start(&db.url, &db.schema);
    wait_for(
        "the engine process's heartbeat",
        Duration::from_secs(20),
        || async {
            db.query("SELECT count(*) FROM {schema}.engines").await[0].get::<_, i64>(0) == 1
        },
    )
    .await;
    let (base, server) = serve(Dashboard::connect(db.url.as_str(), &db.schema).unwrap());
    let enqueue = |priority: i32, n: i32| {
        let db = &db;
        async move {
            db.query(&format!("SELECT {{schema}}.enqueue('browser_work', priority => {priority}) FROM generate_series(1, {n})")).await;
        }
    };

    b.run(async {
        b.goto(&format!("{base}/lanes")).await?;
        check(
            b.page().await?.contains("second-process-"),
            "the other process is listed",
        )?;
        b.click("#pause-bulk").await?;
        check(
            b.text("p.notice").await?.contains("control v"),
            "the pause is saved",
        )?;
        b.until(
            &format!("{base}/lanes"),
            "the pause applied by the other process",
            Duration::from_secs(20),
            |p| p.contains("applied v") && p.contains("state s-cancelled\">paused"),
        )
        .await?;

        // Bulk jobs wait; urgent ones still run on the same process.
        enqueue(50, 10).await;
        enqueue(1, 1).await;
        wait_for("the urgent job done", Duration::from_secs(20), || async {
            count(&db, "priority = 1 AND state = 'completed'").await == 1
        })
        .await;
        // Ten poll intervals of the other process: a running lane would have claimed.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = count(&db, "priority = 50 AND state <> 'available'").await;
        check(
            started == 0,
            format!("{started} bulk jobs started while the lane was paused"),
        )?;

        b.goto(&format!("{base}/lanes")).await?;
        b.click("#resume-bulk").await?;
        wait_for(
            "the bulk jobs done after resuming",
            Duration::from_secs(30),
            || async { count(&db, "priority = 50 AND state = 'completed'").await == 10 },
        )
        .await;
        b.until(
            &format!("{base}/"),
            "the lane shown active",
            Duration::from_secs(10),
            |p| p.contains("data-lane=\"bulk\"") && !p.contains(">paused<"),
        )
        .await?;
        Ok(())
    })
    .await;
    server.stop(true).await;
    drop(other);
    db.cleanup().await;
}
