//! Prometheus text for pglane's metrics (feature `prometheus`): installs a recorder for
//! the [`metrics`] facade and serves what it holds from an actix-web handler.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = pglane::prometheus::install()?;
//! HttpServer::new(move || {
//!     App::new()
//!         .app_data(web::Data::new(metrics.clone()))
//!         .route("/metrics", web::get().to(pglane::prometheus::handler))
//! })
//! .bind("127.0.0.1:8080")?
//! .run()
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Any other exporter of the `metrics` ecosystem works too: pglane only emits through
//! the facade. The README lists every metric.

use std::time::Duration;

use actix_web::{web, HttpResponse};
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::error::{Error, Result};

/// Histogram buckets of durations, in seconds: 100 µs to 5 min.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Histogram buckets of batch sizes, in jobs.
const JOBS_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
];

/// How often recorded histogram samples are folded into their buckets when nobody
/// scrapes (it bounds the memory samples take between scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs a Prometheus recorder as the process's global `metrics` recorder, with
/// histogram buckets for pglane's durations (`_seconds`: 100 µs to 5 min) and batch
/// sizes (`_jobs`: 0 to 2,000), and starts a thread that keeps it tidy. Returns the
/// handle to render from (give it to [`handler`]).
///
/// Fails with [`Error::InvalidConfig`] if a global recorder is already installed.
pub fn install() -> Result<PrometheusHandle> {
    let bad = |e: metrics_exporter_prometheus::BuildError| {
        Error::InvalidConfig(format!("prometheus recorder: {e}"))
    };
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(bad)?
        .set_buckets_for_metric(Matcher::Suffix("_jobs".into()), JOBS_BUCKETS)
        .map_err(bad)?
        .install_recorder()
        .map_err(bad)?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("pglane-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        })
        .map_err(|e| Error::InvalidConfig(format!("prometheus upkeep thread: {e}")))?;
    Ok(handle)
}

/// The metrics in Prometheus text format: an actix-web handler for `GET /metrics`,
/// reading the handle from `web::Data<PrometheusHandle>`.
pub async fn handler(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}
