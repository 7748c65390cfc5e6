//! The dashboard (feature `dashboard`): every endpoint against a real PostgreSQL,
//! mounted under a prefix as an application would mount it. Access hook refusals, CSRF
//! failures, read-only mode and bad input (malformed JSON, huge values, SQL-looking
//! text) each answer a clear 4xx and change nothing.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{test, App};
use pglane::dashboard::{Access, Dashboard};
use pglane::Lane;

use crate::support::*;

const MOUNT: &str = "/admin/jobs";

/// One answer: status, body, and the CSRF cookie if it set one.
struct Answer {
    status: StatusCode,
    body: String,
    location: Option<String>,
    csp: Option<String>,
}

async fn answer<B: MessageBody>(r: ServiceResponse<B>) -> Answer {
    let status = r.status();
    let h = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (location, csp) = (h("location"), h("content-security-policy"));
    let body = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
    Answer {
        status,
        body,
        location,
        csp,
    }
}

/// A browser-like client of one dashboard service: keeps the CSRF cookie.
struct Client<S> {
    app: S,
    cookie: Option<String>,
}

impl<S, B> Client<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn get(&mut self, path: &str) -> Answer {
        let mut req = test::TestRequest::get().uri(&format!("{MOUNT}{path}"));
        if let Some(c) = &self.cookie {
            req = req.insert_header(("cookie", format!("pglane_csrf={c}")));
        }
        let r = test::call_service(&self.app, req.to_request()).await;
        if let Some(v) = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            let token = v
                .trim_start_matches("pglane_csrf=")
                .split(';')
                .next()
                .unwrap();
            self.cookie = Some(token.to_string());
        }
        answer(r).await
    }

    /// Posts `form` with the cookie and token this client holds (after a GET).
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let token = self.cookie.clone().unwrap_or_default();
        let mut fields: Vec<(&str, &str)> = vec![("csrf", &token)];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields, self.cookie.clone(), None)
            .await
    }

    async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        cookie: Option<String>,
        fetch_site: Option<&str>,
    ) -> Answer {
        let body = serde_urlencoded_string(form);
        let mut req = test::TestRequest::post()
            .uri(&format!("{MOUNT}{path}"))
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(body);
        if let Some(c) = cookie {
            req = req.insert_header(("cookie", format!("pglane_csrf={c}")));
        }
        if let Some(s) = fetch_site {
            req = req.insert_header(("sec-fetch-site", s));
        }
        answer(test::call_service(&self.app, req.to_request()).await).await
    }
}

fn serde_urlencoded_string(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn client(
    d: Dashboard,
) -> Client<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let app = test::init_service(App::new().service(d.scope(MOUNT))).await;
    Client { app, cookie: None }
}

fn dashboard(db: &TestDb) -> Dashboard {
    Dashboard::connect(db.url.as_str(), &db.schema).unwrap()
}

/// A failed job with one recorded error, straight into the history table.
async fn failed_job(db: &TestDb, error: &str) -> i64 {
    let id: i64 = db
        .query("SELECT {schema}.enqueue('mailer', '{\"to\": \"x@y.z\"}')")
        .await[0]
        .get(0);
    db.client
        .execute(
            &format!(
                "WITH gone AS (DELETE FROM \"{s}\".jobs WHERE id = $1 RETURNING *)
                 INSERT INTO \"{s}\".jobs_finished (id, kind, queue, priority, args, state, attempt,
                   max_attempts, run_at, unique_key, worker_id, rescues, errors, created_at, started_at)
                 SELECT id, kind, queue, priority, args, 'failed', 1, max_attempts, run_at, unique_key,
                   'w1', 0, jsonb_build_array(jsonb_build_object('attempt', 1, 'at', now(), 'error', $2::text)),
                   created_at, now() FROM gone",
                s = db.schema
            ),
            &[&id, &error],
        )
        .await
        .unwrap();
    id
}

async fn state_of(db: &TestDb, id: i64) -> Option<String> {
    db.query(&format!(
        "SELECT CASE WHEN state = 'available' AND run_at > now() THEN 'scheduled' ELSE state END
         FROM {{schema}}.all_jobs WHERE id = {id}"
    ))
    .await
    .first()
    .map(|r| r.get(0))
}

#[actix_rt::test]
async fn every_page_renders_under_its_mount_with_a_strict_csp() {
    let db = TestDb::new().await;
    let due: i64 = db
        .query("SELECT {schema}.enqueue('send_email', '{\"to\": \"a@b.c\"}', priority => 5)")
        .await[0]
        .get(0);
    let failed = failed_job(&db, "SMTP said <no> & goodbye").await;
    let mut c = client(dashboard(&db)).await;

    let overview = c.get("").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview
        .csp
        .as_deref()
        .unwrap()
        .starts_with("default-src 'none'; script-src 'self'"));
    assert!(overview
        .body
        .contains("href=\"/admin/jobs/assets/app.css\""));
    assert!(overview
        .body
        .contains("<script src=\"/admin/jobs/assets/app.js\" defer>"));
    assert!(
        !overview.body.contains("<script>") && !overview.body.contains("style=\""),
        "no inline script or style"
    );
    assert!(c.cookie.is_some(), "the first page sets the CSRF cookie");
    assert!(overview.body.contains("data-queue=\"default\""));
    assert!(overview.body.contains("Exact counts"));

    let jobs = c.get("/jobs").await;
    assert_eq!(jobs.status, StatusCode::OK);
    assert!(jobs
        .body
        .contains(&format!("href=\"/admin/jobs/jobs/{due}\"")));
    assert!(jobs
        .body
        .contains(&format!("href=\"/admin/jobs/jobs/{failed}\"")));

    let only_failed = c.get("/jobs?state=failed").await;
    assert!(only_failed.body.contains(&format!("/jobs/{failed}\"")));
    assert!(!only_failed.body.contains(&format!("/jobs/{due}\"")));
    let by_args = c
        .get(&format!("/jobs?args={}", enc("{\"to\": \"a@b.c\"}")))
        .await;
    assert!(
        by_args.body.contains(&format!("/jobs/{due}\""))
            && !by_args.body.contains(&format!("/jobs/{failed}\""))
    );
    let urgent = c.get("/jobs?order=urgent").await;
    assert!(
        urgent.body.contains(&format!("/jobs/{due}\""))
            && !urgent.body.contains(&format!("/jobs/{failed}\"")),
        "urgent lists live jobs"
    );

    let detail = c.get(&format!("/jobs/{failed}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(
        detail.body.contains("SMTP said &lt;no&gt; &amp; goodbye"),
        "the error, escaped"
    );
    assert!(
        detail.body.contains("&quot;to&quot;: &quot;x@y.z&quot;"),
        "args, pretty"
    );
    assert!(detail.body.contains("attempt 1 failed"));

    for (path, want) in [
        ("/lanes", 200),
        ("/enqueue", 200),
        ("/jobs/999999999", 404),
        ("/jobs/abc", 400),
        ("/nope", 404),
    ] {
        assert_eq!(c.get(path).await.status.as_u16(), want, "{path}");
    }
    let css = c.get("/assets/app.css").await;
    assert!(css.status.is_success() && css.body.contains("--failed"));
    assert!(c
        .get("/assets/app.js")
        .await
        .body
        .contains("visibilitychange"));
    db.cleanup().await;
}

#[actix_rt::test]
async fn the_access_hook_and_read_only_mode_are_enforced() {
    let db = TestDb::new().await;
    let id: i64 = db.query("SELECT {schema}.enqueue('k')").await[0].get(0);

    let mut none = client(dashboard(&db).access(|_| Access::None)).await;
    for path in ["", "/jobs", "/lanes", "/assets/app.css"] {
        assert_eq!(none.get(path).await.status, StatusCode::FORBIDDEN, "{path}");
    }

    // The hook sees the request: a header decides here.
    let by_header = dashboard(&db).access(|req| match req.headers().get("x-role") {
        Some(v) if v == "admin" => Access::Full,
        _ => Access::ReadOnly,
    });
    let mut staff = client(by_header).await;
    let page = staff.get("/jobs").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("read-only") && !page.body.contains("jobs/action"),
        "no action forms"
    );
    assert_eq!(staff.get("/enqueue").await.status, StatusCode::FORBIDDEN);
    let id_s = id.to_string();
    let refused = staff
        .post(
            "/jobs/action",
            &[("do", "cancel.selected"), ("id", &id_s), ("confirm", "1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = staff.post("/enqueue", &[("kind", "k2")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = staff
        .post(
            "/lanes/control",
            &[("queue", "default"), ("lane", "a"), ("op", "pause")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let mut read_only = client(dashboard(&db).read_only(true)).await;
    read_only.get("").await;
    let refused = read_only
        .post(
            "/jobs/action",
            &[("do", "cancel.selected"), ("id", &id_s), ("confirm", "1")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    assert_eq!(
        state_of(&db, id).await.as_deref(),
        Some("available"),
        "nothing changed"
    );
    assert_eq!(db.count("true").await, 1);
    assert_eq!(
        db.query("SELECT count(*) FROM {schema}.lane_controls")
            .await[0]
            .get::<_, i64>(0),
        0
    );
    db.cleanup().await;
}

#[actix_rt::test]
async fn actions_without_the_matching_csrf_token_are_refused() {
    let db = TestDb::new().await;
    let id: i64 = db.query("SELECT {schema}.enqueue('k')").await[0].get(0);
    let id_s = id.to_string();
    let mut c = client(dashboard(&db)).await;
    c.get("/jobs").await;
    let token = c.cookie.clone().unwrap();
    let form = [
        ("do", "cancel.selected"),
        ("id", id_s.as_str()),
        ("confirm", "1"),
    ];

    // No cookie, no token, a token of another session, a cross-site request.
    let no_cookie = c
        .post_raw(
            "/jobs/action",
            &[&[("csrf", token.as_str())], &form[..]].concat(),
            None,
            None,
        )
        .await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    assert!(no_cookie.body.contains("security token"));
    let no_token = c
        .post_raw("/jobs/action", &form, Some(token.clone()), None)
        .await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let other = "ab".repeat(32);
    let wrong = c
        .post_raw(
            "/jobs/action",
            &[&[("csrf", other.as_str())], &form[..]].concat(),
            Some(token.clone()),
            None,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let cross = c
        .post_raw(
            "/jobs/action",
            &[&[("csrf", token.as_str())], &form[..]].concat(),
            Some(token.clone()),
            Some("cross-site"),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(
        state_of(&db, id).await.as_deref(),
        Some("available"),
        "nothing changed"
    );

    // The same form with the token goes through.
    let ok = c.post("/jobs/action", &form).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(state_of(&db, id).await.as_deref(), Some("cancelled"));
    db.cleanup().await;
}

#[actix_rt::test]
async fn bad_filter_and_form_input_is_a_400_and_changes_nothing() {
    let db = TestDb::new().await;
    for _ in 0..3 {
        db.query("SELECT {schema}.enqueue('k')").await;
    }
    let mut c = client(dashboard(&db)).await;
    let huge = "9".repeat(5000);
    let bad_queries = [
        format!("args={}", enc("{\"to\": ")),
        format!("args={}", enc(&format!("\"{}\"", "x".repeat(5000)))),
        format!("args={}", enc("{\"a\": \"\\u0000\"}")),
        format!("kind={}", enc("k'; DROP TABLE jobs; --")),
        format!("queue={}", enc("default' OR '1'='1")),
        format!("key={}", enc(&"k".repeat(3000))),
        format!("pmin={huge}"),
        "pmin=-1".into(),
        "pmin=10&pmax=5".into(),
        "id=1%20OR%201%3D1".into(),
        "state=done".into(),
        "order=random()".into(),
        "after=1;2".into(),
    ];
    for q in &bad_queries {
        let a = c.get(&format!("/jobs?{q}")).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(a.body.contains("Bad filter"), "{q}: says why");
    }
    // The same through an action on every matching job: refused before any count.
    for q in &bad_queries[..6] {
        let (k, v) = q.split_once('=').unwrap();
        let v = percent_decode(v);
        let a = c
            .post(
                "/jobs/action",
                &[("do", "cancel.filter"), ("confirm", "1"), (k, &v)],
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}");
    }
    let bad_forms: [&[(&str, &str)]; 6] = [
        &[("kind", "k'; DROP TABLE jobs; --")],
        &[("kind", "k"), ("args", "{not json")],
        &[("kind", "k"), ("priority", "-1")],
        &[("kind", "k"), ("priority", &huge)],
        &[("kind", "k"), ("queue", "Mail")],
        &[("kind", "k"), ("delay", "1e300")],
    ];
    for f in bad_forms {
        let a = c.post("/enqueue", f).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{f:?}");
        assert!(a.body.contains("role=\"alert\""), "{f:?}");
    }
    for f in [
        &[("do", "explode.selected"), ("id", "1")][..],
        &[("do", "cancel.selected"), ("id", "1 OR 1=1")],
        &[("do", "cancel.selected")],
        &[("do", "cancel.everything")],
    ] {
        assert_eq!(
            c.post("/jobs/action", f).await.status,
            StatusCode::BAD_REQUEST,
            "{f:?}"
        );
    }
    for f in [
        &[("queue", "default"), ("lane", "a; DROP"), ("op", "pause")][..],
        &[
            ("queue", "default"),
            ("lane", "a"),
            ("op", "concurrency"),
            ("concurrency", "0"),
        ],
        &[("queue", "default"), ("lane", "a"), ("op", "explode")],
    ] {
        assert_eq!(
            c.post("/lanes/control", f).await.status,
            StatusCode::BAD_REQUEST,
            "{f:?}"
        );
    }
    assert_eq!(db.count("state = 'available'").await, 3, "nothing changed");
    assert_eq!(db.count("true").await, 3, "nothing enqueued");
    db.cleanup().await;
}

fn percent_decode(s: &str) -> String {
    let pairs: Vec<(String, String)> = url_pairs(&format!("x={s}"));
    pairs[0].1.clone()
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(q)
        .unwrap()
        .into_inner()
}

#[actix_rt::test]
async fn actions_on_selected_and_matching_jobs_confirm_with_a_count() {
    let db = TestDb::new().await;
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(
            db.query("SELECT {schema}.enqueue('k', queue => 'mail')")
                .await[0]
                .get::<_, i64>(0),
        );
    }
    let other: i64 = db.query("SELECT {schema}.enqueue('k')").await[0].get(0);
    let later: i64 = db
        .query("SELECT {schema}.enqueue('later', delay => interval '1 hour')")
        .await[0]
        .get(0);
    let f1 = failed_job(&db, "boom").await;
    let f2 = failed_job(&db, "boom").await;
    let mut c = client(dashboard(&db)).await;
    c.get("/jobs").await;

    // Every job matching the filter: first a confirmation that says how many.
    let ask = c
        .post(
            "/jobs/action",
            &[
                ("do", "cancel.filter"),
                ("queue", "mail"),
                ("state", "available"),
            ],
        )
        .await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(
        ask.body
            .contains("Cancel 3 jobs matching state=available, queue=mail?"),
        "{}",
        ask.body
    );
    assert_eq!(
        db.count("state = 'cancelled'").await,
        0,
        "asking changes nothing"
    );
    let done = c
        .post(
            "/jobs/action",
            &[
                ("do", "cancel.filter"),
                ("queue", "mail"),
                ("state", "available"),
                ("confirm", "1"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(done
        .location
        .unwrap()
        .starts_with("/admin/jobs/jobs?state=available&queue=mail&notice="));
    for id in &live {
        assert_eq!(state_of(&db, *id).await.as_deref(), Some("cancelled"));
    }
    assert_eq!(
        state_of(&db, other).await.as_deref(),
        Some("available"),
        "outside the filter"
    );

    // Selected jobs.
    let (s1, s2) = (f1.to_string(), f2.to_string());
    let ask = c
        .post(
            "/jobs/action",
            &[("do", "retry.selected"), ("id", &s1), ("id", &s2)],
        )
        .await;
    assert!(ask.body.contains("Retry 2 selected jobs?"), "{}", ask.body);
    let done = c
        .post(
            "/jobs/action",
            &[
                ("do", "retry.selected"),
                ("id", &s1),
                ("id", &s2),
                ("confirm", "1"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(state_of(&db, f1).await.as_deref(), Some("available"));
    assert_eq!(state_of(&db, f2).await.as_deref(), Some("available"));

    let l = later.to_string();
    c.post(
        "/jobs/action",
        &[("do", "run_now.selected"), ("id", &l), ("confirm", "1")],
    )
    .await;
    assert_eq!(state_of(&db, later).await.as_deref(), Some("available"));

    let cancelled = live[0].to_string();
    let done = c
        .post(
            "/jobs/action",
            &[
                ("do", "delete.selected"),
                ("id", &cancelled),
                ("confirm", "1"),
                ("back", "job"),
            ],
        )
        .await;
    assert_eq!(
        done.location.as_deref().map(|l| l.starts_with(&format!(
            "/admin/jobs/jobs/{cancelled}?notice=1%20of%201%20job%20deleted"
        ))),
        Some(true)
    );
    assert_eq!(state_of(&db, live[0]).await, None);
    db.cleanup().await;
}

#[actix_rt::test]
async fn keyset_pages_walk_every_job_once_in_both_orders() {
    let db = TestDb::new().await;
    db.query("SELECT {schema}.enqueue('k', priority => (random() * 20)::int) FROM generate_series(1, 120)").await;
    let mut c = client(dashboard(&db)).await;
    for order in ["newest", "urgent"] {
        let mut seen = Vec::new();
        let mut path = format!("/jobs?order={order}");
        for _ in 0..10 {
            let page = c.get(&path).await;
            assert_eq!(page.status, StatusCode::OK);
            seen.extend(
                page.body
                    .match_indices("name=\"id\" value=\"")
                    .map(|(i, m)| {
                        page.body[i + m.len()..]
                            .split('"')
                            .next()
                            .unwrap()
                            .parse::<i64>()
                            .unwrap()
                    }),
            );
            match page
                .body
                .split("rel=\"next\"")
                .next()
                .and_then(|b| b.rsplit("href=\"/admin/jobs").next())
            {
                Some(next) if page.body.contains("rel=\"next\"") => {
                    path = next.split('"').next().unwrap().replace("&amp;", "&");
                }
                _ => break,
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (120, 120), "{order}");
    }
    db.cleanup().await;
}

#[actix_rt::test]
async fn enqueue_by_hand_goes_through_the_sql_function() {
    let db = TestDb::new().await;
    let mut c = client(dashboard(&db)).await;
    c.get("/enqueue").await;
    let a = c
        .post(
            "/enqueue",
            &[
                ("kind", "send_email"),
                ("args", "{\"to\": \"ops@x.y\"}"),
                ("priority", "3"),
                ("queue", "mail"),
                ("delay", "60"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let id: i64 = a
        .location
        .unwrap()
        .trim_start_matches("/admin/jobs/jobs/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let row = &db.query(&format!("SELECT kind, queue, priority, args->>'to', run_at > now() + interval '50 seconds' FROM {{schema}}.jobs WHERE id = {id}")).await[0];
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i16>(2),
            row.get::<_, String>(3),
            row.get::<_, bool>(4)
        ),
        (
            "send_email".into(),
            "mail".into(),
            3,
            "ops@x.y".into(),
            true
        )
    );
    // Checks the Rust side does not make are still made by the SQL function.
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let a = c.post("/enqueue", &[("kind", "k"), ("args", &deep)]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body.contains("pglane:"),
        "the function's message is shown: {}",
        a.body
    );
    assert_eq!(db.count("true").await, 1);
    db.cleanup().await;
}

#[actix_rt::test]
async fn lane_controls_reach_a_running_engine_and_show_as_applied() {
    let db = TestDb::new().await;
    let engine = db
        .engine()
        .heartbeat_interval(Duration::from_millis(200))
        .lane(Lane::new("urgent").priorities(0..=9).concurrency(2))
        .lane(Lane::new("bulk").priorities(10..).concurrency(3))
        .register::<Probe>()
        .start()
        .await
        .unwrap();
    let mut c = client(Dashboard::for_engine(&engine)).await;
    let lane = |engine: &pglane::Engine, name: &'static str| {
        let engine = engine.clone();
        async move {
            let s = engine.stats().await.unwrap();
            let l = s.lanes.into_iter().find(|l| l.name == name).unwrap();
            (l.paused, l.concurrency)
        }
    };
    wait_for(
        "the engine's heartbeat",
        Duration::from_secs(10),
        || async {
            db.query("SELECT count(*) FROM {schema}.engines").await[0].get::<_, i64>(0) == 1
        },
    )
    .await;
    let overview = c.get("").await;
    assert!(
        overview
            .body
            .contains("Engines connected: <strong id=\"engine-count\">1</strong>"),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("data-lane=\"bulk\""));

    let a = c
        .post(
            "/lanes/control",
            &[("queue", "default"), ("lane", "bulk"), ("op", "pause")],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    wait_for("bulk paused", Duration::from_secs(10), || async {
        lane(&engine, "bulk").await == (true, 3)
    })
    .await;
    assert_eq!(
        lane(&engine, "urgent").await,
        (false, 2),
        "other lanes untouched"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !c.get("/lanes").await.body.contains("applied v") {
        assert!(
            std::time::Instant::now() < deadline,
            "the pause not shown as applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    c.post(
        "/lanes/control",
        &[
            ("queue", "default"),
            ("lane", "bulk"),
            ("op", "concurrency"),
            ("concurrency", "7"),
        ],
    )
    .await;
    wait_for(
        "bulk at 7 slots, still paused",
        Duration::from_secs(10),
        || async { lane(&engine, "bulk").await == (true, 7) },
    )
    .await;
    c.post(
        "/lanes/control",
        &[("queue", "default"), ("lane", "bulk"), ("op", "resume")],
    )
    .await;
    wait_for("bulk resumed", Duration::from_secs(10), || async {
        lane(&engine, "bulk").await == (false, 7)
    })
    .await;

    engine.shutdown().await.unwrap();
    wait_for(
        "the stopped engine gone",
        Duration::from_secs(10),
        || async {
            db.query("SELECT count(*) FROM {schema}.engines").await[0].get::<_, i64>(0) == 0
        },
    )
    .await;
    db.cleanup().await;
}

#[actix_rt::test]
async fn schedules_are_listed_and_run_now_enqueues_one_job() {
    let db = TestDb::new().await;
    let engine = db
        .engine()
        .schedule(
            pglane::Schedule::new("nightly_report", "0 3 * * *")
                .job(pglane::Enqueue::new(Probe::new("nightly")).priority(7)),
        )
        .register::<Probe>()
        .start()
        .await
        .unwrap();
    wait_for("the schedule stored", Duration::from_secs(10), || async {
        db.query("SELECT count(*) FROM {schema}.schedules").await[0].get::<_, i64>(0) == 1
    })
    .await;
    let mut c = client(Dashboard::for_engine(&engine)).await;
    let page = c.get("/schedules").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("data-schedule=\"nightly_report\"") && page.body.contains("0 3 * * *"),
        "{}",
        page.body
    );
    let a = c
        .post("/schedules/run", &[("name", "nightly_report")])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(db.count("kind = 'probe' AND priority = 7").await, 1);
    assert_eq!(
        c.post("/schedules/run", &[("name", "nope")]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(db.count("true").await, 1, "nothing else enqueued");
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

#[actix_rt::test]
async fn cancel_reaches_a_running_job() {
    let db = TestDb::new().await;
    let engine = db
        .engine()
        .cancel_grace(Duration::from_millis(200))
        .register::<Probe>()
        .start()
        .await
        .unwrap();
    let id = engine
        .enqueue(pglane::Enqueue::new(Probe::behave(
            "long",
            Behave::SleepMs(60_000),
        )))
        .await
        .unwrap();
    db.wait_count("state = 'running'", 1, Duration::from_secs(10))
        .await;
    let mut c = client(Dashboard::for_engine(&engine)).await;
    c.get(&format!("/jobs/{id}")).await;
    let id_s = id.to_string();
    let a = c
        .post(
            "/jobs/action",
            &[
                ("do", "cancel.selected"),
                ("id", &id_s),
                ("confirm", "1"),
                ("back", "job"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    db.wait_count("state = 'cancelled'", 1, Duration::from_secs(15))
        .await;
    let page = c.get(&format!("/jobs/{id}")).await;
    assert!(
        page.body.contains("cancelled by dashboard"),
        "{}",
        page.body
    );
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A job's page links its parents and children (flows), both ways.
#[actix_rt::test]
async fn job_detail_links_parents_and_children() {
    let db = TestDb::new().await;
    let engine = db.probe_engine().await;
    engine.pause("default").await.unwrap();
    let flow = pglane::Flow::new()
        .job(pglane::FlowJob::new(
            "a",
            pglane::Enqueue::new(Probe::new("a")),
        ))
        .job(pglane::FlowJob::new("b", pglane::Enqueue::new(Probe::new("b"))).after("a"));
    let ids = engine.enqueue_flow(flow).await.unwrap();
    let (parent, child) = (ids[0], ids[1]);
    let mut c = client(dashboard(&db)).await;
    let page = c.get(&format!("/jobs/{parent}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains(&format!("<a href=\"{MOUNT}/jobs/{child}\">{child}</a>")),
        "the parent links its child"
    );
    let page = c.get(&format!("/jobs/{child}")).await;
    assert!(
        page.body
            .contains(&format!("<a href=\"{MOUNT}/jobs/{parent}\">{parent}</a>")),
        "the child links its parent"
    );
    engine.shutdown().await.unwrap();
    db.cleanup().await;
}

/// A filtered newest-first page searches at most 250,000 ids (by id, not by row: ids
/// far apart make the windows here), says so, and links to the next window down until
/// the oldest id; a state filter reads only the table its jobs are in.
#[actix_rt::test]
async fn filtered_pages_search_bounded_windows_and_walk_older_ones() {
    let db = TestDb::new().await;
    for (id, user, state) in [
        (10i64, 7, "completed"),
        (300_000, 7, "failed"),
        (700_000, 7, "completed"),
        (700_001, 8, "completed"),
    ] {
        db.client
            .execute(
                &format!(
                    "INSERT INTO \"{s}\".jobs_finished (id, kind, queue, priority, args, state, attempt,
                       max_attempts, run_at, worker_id, rescues, errors, created_at, started_at)
                     VALUES ($1, 'k', 'default', 100, jsonb_build_object('user', $2::int), $3, 1, 20,
                       now(), 'w1', 0, '[]', now(), now())",
                    s = db.schema
                ),
                &[&id, &user, &state],
            )
            .await
            .unwrap();
    }
    // A live job matching too (its id comes from the sequence: 1).
    db.query("SELECT {schema}.enqueue('k', '{\"user\": 7}')")
        .await;
    let mut c = client(dashboard(&db)).await;
    let ids_on = |body: &str| -> Vec<i64> {
        body.match_indices("name=\"id\" value=\"")
            .map(|(i, m)| {
                body[i + m.len()..]
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect()
    };
    let next_of = |body: &str| -> Option<String> {
        let before = body.split("rel=\"next\"").next()?;
        body.contains("rel=\"next\"").then(|| {
            before
                .rsplit("href=\"/admin/jobs")
                .next()
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .replace("&amp;", "&")
        })
    };
    let mut path = format!("/jobs?args={}", enc("{\"user\": 7}"));
    let mut pages = Vec::new();
    for _ in 0..6 {
        let page = c.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages.push((
            ids_on(&page.body),
            page.body.contains("id=\"search-window\""),
        ));
        if pages.len() == 1 {
            assert!(
                page.body.contains("Searched ids 450,002 to 700,001"),
                "the first window ends at the newest id: {}",
                page.body
            );
        }
        match next_of(&page.body) {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![
            (vec![700_000], true),
            (vec![300_000], true),
            (vec![10, 1], false),
        ],
        "each window once, newest first, and the last one without a bound"
    );
    // A state filter bounds its pages too, and reads only the table its jobs are in:
    // walking every window finds exactly the failed job, or the available one.
    for (state, want) in [("failed", vec![300_000i64]), ("available", vec![1])] {
        let (mut path, mut found, mut pages) = (format!("/jobs?state={state}"), Vec::new(), 0);
        loop {
            let page = c.get(&path).await;
            assert_eq!(page.status, StatusCode::OK);
            found.extend(ids_on(&page.body));
            pages += 1;
            match next_of(&page.body) {
                Some(next) => path = next,
                None => break,
            }
        }
        assert_eq!((found, pages), (want, 3), "{state}");
    }
    // Unfiltered, nothing is bounded: one page holds them all.
    let all = c.get("/jobs").await;
    assert_eq!(ids_on(&all.body), vec![700_001, 700_000, 300_000, 10, 1]);
    assert!(!all.body.contains("search-window"));
    db.cleanup().await;
}
