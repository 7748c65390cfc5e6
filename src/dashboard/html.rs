//! HTML building blocks: escaping, numbers and times for people, the page layout.
//! Pages are server-rendered strings; every value from the database or the request goes
//! through [`esc`] (or [`attr`] inside attributes).

use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// Escapes text for HTML content and quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a query string component.
pub(crate) fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A count with thousands separators: `1,234,567`.
pub(crate) fn num(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// A duration rounded for reading: `850ms`, `12s`, `4m 05s`, `3h 20m`, `2d 4h`.
pub(crate) fn dur(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A time relative to `now`: `12s ago`, `in 4m 05s`.
pub(crate) fn ago(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(d) => format!("{} ago", dur(d)),
        Err(e) => format!("in {}", dur(e.duration())),
    }
}

/// A UTC timestamp, `2026-11-30 16:20:05Z`, for `title` attributes and the timeline.
pub(crate) fn utc(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

/// A time cell: relative text, the exact UTC time on hover.
pub(crate) fn time_cell(t: SystemTime, now: SystemTime) -> String {
    format!(
        "<time datetime=\"{}\" title=\"{}\">{}</time>",
        utc(t),
        utc(t),
        esc(&ago(t, now))
    )
}

/// A state badge, coloured the same on every page.
pub(crate) fn state_badge(state: &str) -> String {
    format!("<span class=\"state s-{0}\">{0}</span>", esc(state))
}

/// The parts of a page the layout needs.
pub(crate) struct Frame<'a> {
    /// The dashboard's mount path (`/admin/jobs`, or empty at the root).
    pub(crate) base: &'a str,
    /// The page title.
    pub(crate) title: &'a str,
    /// Which navigation entry is current: `overview`, `jobs`, `lanes`, `enqueue`.
    pub(crate) nav: &'a str,
    /// Whether actions are hidden (read-only access or mode).
    pub(crate) read_only: bool,
    /// A notice to show above the content (already plain text; escaped here).
    pub(crate) notice: Option<&'a str>,
}

/// A whole page: head (assets by path under the mount), navigation, live content.
pub(crate) fn page(f: &Frame<'_>, body: &str) -> String {
    let b = esc(f.base);
    let mut nav = String::new();
    let mut entries = vec![
        ("overview", "Overview", String::from("/")),
        ("jobs", "Jobs", "/jobs".into()),
        ("lanes", "Lanes", "/lanes".into()),
        ("schedules", "Schedules", "/schedules".into()),
    ];
    if !f.read_only {
        entries.push(("enqueue", "Enqueue", "/enqueue".into()));
    }
    for (key, label, path) in entries {
        let current = if key == f.nav {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{b}{path}\"{current}>{label}</a>");
    }
    let badge = if f.read_only {
        "<span class=\"badge\">read-only</span>"
    } else {
        ""
    };
    let notice = f
        .notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", esc(n)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · pglane</title>\
<link rel=\"stylesheet\" href=\"{b}/assets/app.css\">\
<script src=\"{b}/assets/app.js\" defer></script></head>\
<body><header><a class=\"brand\" href=\"{b}/\">pglane</a><nav>{nav}</nav>{badge}\
<span class=\"spacer\"></span>\
<label class=\"refresh\">Refresh <select id=\"refresh\" aria-label=\"Refresh interval\">\
<option value=\"0\">off</option><option value=\"2\">2 s</option><option value=\"5\">5 s</option>\
<option value=\"15\">15 s</option><option value=\"60\">1 min</option></select></label>\
<button type=\"button\" id=\"theme\" title=\"Theme: auto, light, dark\">◐</button></header>\
<main id=\"live\">{notice}<h1>{title}</h1>{body}</main></body></html>",
        title = esc(f.title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href='x'>\"&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(url("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn numbers_durations_and_times_read_well() {
        assert_eq!(num(0), "0");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(num(-1000), "-1,000");
        assert_eq!(dur(Duration::from_millis(850)), "850ms");
        assert_eq!(dur(Duration::from_secs(245)), "4m 05s");
        assert_eq!(dur(Duration::from_secs(3 * 3600 + 20 * 60)), "3h 20m");
        assert_eq!(dur(Duration::from_secs(2 * 86_400 + 4 * 3600)), "2d 4h");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(ago(now - Duration::from_secs(12), now), "12s ago");
        assert_eq!(ago(now + Duration::from_secs(600), now), "in 10m 00s");
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_055_605);
        assert_eq!(utc(t), "2026-11-30 16:20:05Z");
    }

    #[test]
    fn pages_link_under_their_mount_and_escape_the_title() {
        let f = Frame {
            base: "/admin/jobs",
            title: "<x>",
            nav: "jobs",
            read_only: true,
            notice: Some("<b>"),
        };
        let html = page(&f, "");
        assert!(html.contains("href=\"/admin/jobs/assets/app.css\""));
        assert!(html.contains("href=\"/admin/jobs/jobs\" aria-current=\"page\""));
        assert!(html.contains("&lt;x&gt;") && html.contains("&lt;b&gt;"));
        assert!(!html.contains("/enqueue"), "no enqueue link when read-only");
    }
}
