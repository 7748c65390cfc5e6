//! Line charts of the last hour as inline SVG: no script, no external asset, coloured by
//! CSS classes (so a strict Content-Security-Policy holds and dark mode applies).

use std::fmt::Write;

use super::html::esc;

/// One line: its legend, CSS class, and (Unix seconds, value) points.
pub(crate) struct Series<'a> {
    pub(crate) label: &'a str,
    pub(crate) class: &'a str,
    pub(crate) points: Vec<(f64, f64)>,
}

const W: f64 = 600.0;
const H: f64 = 140.0;
const PAD_L: f64 = 48.0;
const PAD_B: f64 = 18.0;

/// A chart of `series` over the hour before `now` (Unix seconds); `unit` follows the
/// largest value on the y axis.
pub(crate) fn last_hour(title: &str, series: &[Series<'_>], now: f64, unit: &str) -> String {
    let start = now - 3600.0;
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let x = |t: f64| PAD_L + (t - start).clamp(0.0, 3600.0) / 3600.0 * (W - PAD_L - 4.0);
    let y = |v: f64| (H - PAD_B) - v / top * (H - PAD_B - 6.0);
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{t}</figcaption>\
<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\" preserveAspectRatio=\"none\">\
<line class=\"axis\" x1=\"{PAD_L}\" y1=\"{b}\" x2=\"{W}\" y2=\"{b}\"/>\
<text class=\"tick\" x=\"2\" y=\"12\">{m}{unit}</text><text class=\"tick\" x=\"2\" y=\"{b}\">0</text>\
<text class=\"tick\" x=\"{PAD_L}\" y=\"{H}\">−60 min</text><text class=\"tick end\" x=\"{W}\" y=\"{H}\">now</text>",
        t = esc(title),
        b = H - PAD_B,
        m = short(max),
    );
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let mut pts = String::new();
        for (t, v) in &s.points {
            let _ = write!(pts, "{:.1},{:.1} ", x(*t), y(*v));
        }
        let _ = write!(
            svg,
            "<polyline class=\"{}\" points=\"{}\"/>",
            esc(s.class),
            pts.trim_end()
        );
    }
    svg.push_str("</svg><p class=\"legend\">");
    for s in series {
        let _ = write!(
            svg,
            "<span class=\"key {}\">{}</span>",
            esc(s.class),
            esc(s.label)
        );
    }
    if series.iter().all(|s| s.points.is_empty()) {
        svg.push_str("<span class=\"muted\">nothing finished in the last hour</span>");
    }
    svg.push_str("</p></figure>");
    svg
}

/// A value for the axis: `12`, `1.5`, `3.2k`.
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_scale_points_into_the_box_and_escape_labels() {
        let now = 10_000.0;
        let s = [Series {
            label: "<p99>",
            class: "p99",
            points: vec![(now - 3600.0, 0.0), (now, 2.0)],
        }];
        let svg = last_hour("wait", &s, now, " s");
        assert!(svg.contains("points=\"48.0,122.0 596.0,"), "{svg}");
        assert!(svg.contains("&lt;p99&gt;"));
        assert!(svg.contains("2.00 s"));
        let empty = last_hour(
            "x",
            &[Series {
                label: "a",
                class: "a",
                points: vec![],
            }],
            now,
            "",
        );
        assert!(empty.contains("nothing finished"));
        assert_eq!(short(12_345.0), "12k");
        assert_eq!(short(1_500.0), "1.5k");
    }
}
