//! pglane inside an actix-web app: handlers enqueue by messaging the supervisor actor.
//!
//! Run it with `cargo run --example actix_web` (listens on 127.0.0.1:8080; set `BIND` to
//! change it), open the dashboard at the printed URL (`/admin/jobs`), then:
//!
//! ```text
//! curl -X POST 'http://127.0.0.1:8080/signup?email=ada@example.com'
//! curl http://127.0.0.1:8080/stats
//! curl http://127.0.0.1:8080/metrics     # Prometheus text (feature `prometheus`)
//! ```
//!
//! Ctrl-C stops the server, then the engine (running jobs get to finish).

use std::time::Duration;

use actix::Addr;
use actix_web::{get, post, web, App, HttpResponse, HttpServer};
use pglane::{Engine, Enqueue, Job, JobContext, JobError, JobSupervisor, Lane, Stats};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing_subscriber::EnvFilter;

const SCHEMA: &str = "pglane_web_demo";

/// Sends the welcome mail after a sign-up.
#[derive(Serialize, Deserialize)]
struct SendWelcome {
    email: String,
}

impl Job for SendWelcome {
    const KIND: &'static str = "send_welcome";

    async fn run(self, ctx: JobContext) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(50)).await; // Talking to the SMTP server.
        println!("job {}: welcome mail sent to {}", ctx.id(), self.email);
        Ok(())
    }
}

#[derive(Deserialize)]
struct Signup {
    email: String,
}

#[post("/signup")]
async fn signup(jobs: web::Data<Addr<JobSupervisor>>, q: web::Query<Signup>) -> HttpResponse {
    let job = Enqueue::new(SendWelcome {
        email: q.into_inner().email,
    })
    .priority(5);
    // `send` (not `do_send`) to learn the job id or why it was refused.
    match jobs.send(job).await {
        Ok(Ok(id)) => HttpResponse::Accepted().json(json!({ "job": id })),
        Ok(Err(e @ pglane::Error::InvalidJob(_))) => {
            HttpResponse::BadRequest().json(json!({ "error": e.to_string() }))
        }
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().json(json!({ "error": e.to_string() })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "error": "engine stopped" })),
    }
}

#[get("/stats")]
async fn stats(jobs: web::Data<Addr<JobSupervisor>>) -> HttpResponse {
    let Ok(Ok(s)) = jobs.send(Stats).await else {
        return HttpResponse::ServiceUnavailable().finish();
    };
    let lanes: Vec<_> = s
        .lanes
        .iter()
        .map(|l| {
            json!({
                "name": l.name, "priorities": [l.priorities.0, l.priorities.1],
                "concurrency": l.concurrency, "running": l.running, "paused": l.paused,
                "waiting": l.waiting, "oldest_wait_ms": l.oldest_wait.map(|d| d.as_millis() as u64),
            })
        })
        .collect();
    let st = s.states;
    HttpResponse::Ok().json(json!({
        "lanes": lanes,
        "states": {
            "available": st.available, "scheduled": st.scheduled, "running": st.running,
            "completed": st.completed, "failed": st.failed, "cancelled": st.cancelled,
        },
        "listener": format!("{:?}", s.listener.mode),
        "database_available": s.database.available,
    }))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // pglane logs through `tracing` (failed attempts at warn, jobs failed for good at
    // error, outages, start and stop at info); `RUST_LOG` picks what to see.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    // Metrics go through the `metrics` facade; this recorder serves them at /metrics.
    let metrics = web::Data::new(pglane::prometheus::install()?);
    // A throwaway PostgreSQL if needed (`pglane::devdb`, feature `test-util`, is on for
    // pglane's own examples); an application reads its database URL from its config.
    let (url, _server) = pglane::devdb::database_url().await?;
    pglane::migrate(&url, SCHEMA).await?;
    let engine = Engine::builder(&url)
        .schema(SCHEMA)
        .lane(Lane::new("urgent").priorities(0..=9).concurrency(4))
        .lane(Lane::new("bulk").priorities(10..).concurrency(2))
        .register::<SendWelcome>()
        .start()
        .await?;

    let supervisor = web::Data::new(engine.supervisor());
    // The operators' dashboard (feature `dashboard`); mount it behind your own auth.
    let dashboard = pglane::dashboard::Dashboard::for_engine(&engine);
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
    println!("listening on http://{bind}; dashboard at http://{bind}/admin/jobs");
    HttpServer::new(move || {
        App::new()
            .app_data(supervisor.clone())
            .app_data(metrics.clone())
            .service(signup)
            .service(stats)
            .route("/metrics", web::get().to(pglane::prometheus::handler))
            .service(dashboard.clone().scope("/admin/jobs"))
    })
    .bind(&bind)?
    .run()
    .await?;

    let report = engine.shutdown().await?;
    println!(
        "engine stopped: {} finished, {} back in the queue",
        report.finished, report.released
    );
    Ok(())
}
