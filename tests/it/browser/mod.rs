//! The dashboard in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, via `fantoccini`), against an engine in this process and a second engine
//! process. Scenarios: the overview's counts match the database; filter to failed jobs,
//! open one and read its error, retry it and see it complete; select every job matching
//! a filter and cancel them; pause a lane and see the other engine process stop claiming
//! from it, then resume it.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`; `.ci/run` installs them). Without them the tests say what to install
//! and pass, except in CI (`CI` set), where they fail. A failing step saves a screenshot
//! under `target/browser-screenshots/`. With `PGLANE_SCREENSHOTS=<dir>` the overview is
//! also saved there in light and dark (the README's pictures).

mod engine_process;
mod scenarios;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// A running chromedriver and a browser session on it; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The test's name, for screenshot files.
    name: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

/// Starts chromedriver and a headless Chromium session, or says what to install:
/// `None` (the test passes) locally, a panic in CI.
pub async fn browser(name: &str) -> Option<Browser> {
    let Some(driver_path) = chromedriver() else {
        let msg = "browser tests need Chromium and chromedriver on the PATH: \
                   install them with `apt-get install chromium chromium-driver` (Debian/Ubuntu)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg} (CI is set: browser tests must run)");
        }
        eprintln!("SKIPPED {name}: {msg}");
        return None;
    };
    let port = free_port();
    let driver = Command::new(driver_path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1300,1000", "--force-prefers-reduced-motion"]
        }
    }))
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let mut b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        b.capabilities(caps.clone());
        match b.connect(&url).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver at {url}: {e}"),
        }
    };
    Some(Browser {
        client,
        driver,
        name: name.to_string(),
    })
}

/// A failed step: what was expected.
pub type Step<T = ()> = Result<T, String>;

impl Browser {
    /// Saves a screenshot of the page as it is, returning where.
    pub async fn screenshot(&self, file: &str) -> PathBuf {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/browser-screenshots"
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(&path, png).unwrap();
        }
        path
    }

    /// Runs a scenario; on failure, saves a screenshot and fails the test with both.
    pub async fn run(&self, scenario: impl std::future::Future<Output = Step>) {
        let result = scenario.await;
        if let Err(e) = result {
            let shot = self.screenshot(&format!("{}-failure.png", self.name)).await;
            let url = self
                .client
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default();
            let _ = self.client.clone().close().await;
            panic!("{e}\n  at {url}\n  screenshot: {}", shot.display());
        }
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) -> Step {
        self.client
            .goto(url)
            .await
            .map_err(|e| format!("open {url}: {e}"))
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Step<String> {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("find {css}: {e}"))?;
        e.text().await.map_err(|e| format!("text of {css}: {e}"))
    }

    /// Clicks what `css` finds, on the same page (no navigation).
    pub async fn press(&self, css: &str) -> Step {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("find {css}: {e}"))?;
        e.click().await.map_err(|e| format!("click {css}: {e}"))
    }

    /// Clicks what `css` finds and waits for the page it leads to (a link or a form
    /// submission: the old document is marked, and the wait ends when a new one loaded).
    pub async fn click(&self, css: &str) -> Step {
        let js = |s: &'static str| async move {
            self.client
                .execute(s, vec![])
                .await
                .map_err(|e| format!("script: {e}"))
        };
        js("document.documentElement.dataset.leaving = '1'").await?;
        self.press(css).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let done = js("return !document.documentElement.dataset.leaving && document.readyState === 'complete'").await?;
            if done == serde_json::Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no new page after clicking {css}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn page(&self) -> Step<String> {
        self.client
            .source()
            .await
            .map_err(|e| format!("page source: {e}"))
    }

    /// Reloads `url` until its page satisfies `ok`, for up to `within`.
    pub async fn until(
        &self,
        url: &str,
        what: &str,
        within: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Step<String> {
        let deadline = Instant::now() + within;
        loop {
            self.goto(url).await?;
            let page = self.page().await?;
            if ok(&page) {
                return Ok(page);
            }
            if Instant::now() > deadline {
                return Err(format!("waited {within:?} for {what}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Fails the step with `msg` unless `cond`.
pub fn check(cond: bool, msg: impl Into<String>) -> Step {
    if cond {
        Ok(())
    } else {
        Err(msg.into())
    }
}
