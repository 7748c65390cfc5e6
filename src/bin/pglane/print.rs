//! How the `pglane` tool prints: tables whose columns fit their content, durations
//! rounded to the nearest unit, and UTC timestamps.

use std::time::{Duration, SystemTime};

use pglane::admin::{JobDetail, JobSummary, QueueCounts};

/// Rows of cells printed with each column as wide as its widest cell; columns listed in
/// `right` are right-aligned (numbers). The last column is never padded.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| match (right.contains(&i), i == last) {
                (true, _) => format!("{c:>w$}", w = widths[i]),
                (false, true) => c.to_string(),
                (false, false) => format!("{c:<w$}", w = widths[i]),
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub(crate) fn stats(schema: &str, queues: &[QueueCounts]) -> String {
    if queues.is_empty() {
        return format!("schema {schema}: no jobs");
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            let s = q.states;
            vec![
                q.queue.clone(),
                s.waiting_on_parents.to_string(),
                s.available.to_string(),
                s.scheduled.to_string(),
                s.running.to_string(),
                s.completed.to_string(),
                s.failed.to_string(),
                s.cancelled.to_string(),
                q.oldest_wait.map_or_else(|| "-".to_string(), human),
            ]
        })
        .collect();
    table(
        &[
            "queue",
            "waiting",
            "available",
            "scheduled",
            "running",
            "completed",
            "failed",
            "cancelled",
            "oldest wait",
        ],
        &rows,
        &[1, 2, 3, 4, 5, 6, 7],
    )
}

pub(crate) fn jobs(jobs: &[JobSummary], now: SystemTime) -> String {
    if jobs.is_empty() {
        return "no jobs".into();
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let error: String = j
                .last_error
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect();
            vec![
                j.id.to_string(),
                j.state.to_string(),
                j.kind.clone(),
                j.queue.clone(),
                j.priority.to_string(),
                format!("{}/{}", j.attempt, j.max_attempts),
                relative(j.run_at, now),
                id_list(&j.parents, 3),
                error.replace('\n', " "),
            ]
        })
        .collect();
    table(
        &[
            "id",
            "state",
            "kind",
            "queue",
            "prio",
            "attempts",
            "run at",
            "after",
            "last error",
        ],
        &rows,
        &[0, 4, 5],
    )
}

/// One job: its fields, args, and a history of state changes, oldest first.
pub(crate) fn job(d: &JobDetail, now: SystemTime) -> String {
    let j = &d.summary;
    let mut out = format!(
        "job {}: {} (queue {}, priority {}{})\nstate:    {} (attempt {}/{})\n",
        j.id,
        j.kind,
        j.queue,
        j.priority,
        // Raised by its lane's aging: the priority it was enqueued with.
        j.base_priority
            .map_or(String::new(), |b| format!(", aged from {b}")),
        j.state,
        j.attempt,
        j.max_attempts
    );
    if let Some(key) = &d.unique_key {
        out.push_str(&format!("unique:   {key}\n"));
    }
    if let Some(w) = &d.worker_id {
        out.push_str(&format!("worker:   {w}\n"));
    }
    if d.rescues > 0 {
        out.push_str(&format!("rescues:  {}\n", d.rescues));
    }
    // Its flow: what it waits for, and what waits for it.
    if !j.parents.is_empty() {
        out.push_str(&format!("after:    {}\n", id_list(&j.parents, 20)));
    }
    if !j.children.is_empty() {
        out.push_str(&format!("before:   {}\n", id_list(&j.children, 20)));
    }
    let args = serde_json::to_string_pretty(&d.args).unwrap_or_else(|_| d.args.to_string());
    out.push_str(&format!(
        "args:     {}\n",
        args.replace('\n', "\n          ")
    ));
    out.push_str("history:\n");
    let mut events: Vec<(Option<SystemTime>, String)> =
        vec![(Some(j.created_at), "enqueued".into())];
    for e in &d.errors {
        let cause = e
            .cause
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        events.push((
            e.at,
            format!(
                "attempt {} failed{cause}: {}",
                e.attempt,
                e.error.replace('\n', " ")
            ),
        ));
    }
    if let Some(started) = d.started_at {
        events.push((Some(started), format!("attempt {} started", j.attempt)));
    }
    match j.finished_at {
        Some(at) => events.push((Some(at), j.state.to_string())),
        None if j.run_at > now => events.push((Some(j.run_at), "due".into())),
        None => {}
    }
    // Errors and starts interleave by time; a missing time sorts first.
    events.sort_by_key(|(t, _)| *t);
    let rows: Vec<Vec<String>> = events
        .into_iter()
        .map(|(t, what)| {
            vec![
                format!("  {}", t.map_or_else(|| "?".to_string(), utc)),
                t.map(|t| relative(t, now)).unwrap_or_default(),
                what,
            ]
        })
        .collect();
    // The table's first line is its (empty) header.
    for line in table(&["", "", ""], &rows, &[]).lines().skip(1) {
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// `1, 2, 3`, or the first `max` ids and how many more.
pub(crate) fn id_list(ids: &[i64], max: usize) -> String {
    let shown: Vec<String> = ids.iter().take(max).map(i64::to_string).collect();
    match ids.len() {
        n if n > max => format!("{} (+{} more)", shown.join(", "), n - max),
        _ => shown.join(", "),
    }
}

/// Periodic jobs, one per line: what `pglane schedules` prints.
pub(crate) fn schedules(list: &[pglane::ScheduleStats], now: SystemTime) -> String {
    if list.is_empty() {
        return "no schedules".to_string();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.cron.clone(),
                s.time_zone.clone(),
                s.kind.clone(),
                s.missed.clone(),
                if s.active { "active" } else { "inactive" }.to_string(),
                s.last_run_at.map_or("never".into(), |t| relative(t, now)),
                match (s.active, s.next_run) {
                    (true, Some(t)) => relative(t, now),
                    (false, _) => "-".into(),
                    (true, None) => "none".into(),
                },
                s.runs.to_string(),
                s.skipped.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "cron",
            "time zone",
            "kind",
            "missed",
            "state",
            "last run",
            "next run",
            "runs",
            "skipped",
        ],
        &rows,
        &[8, 9],
    )
}

/// `3m ago` or `in 20s`, relative to `now`.
pub(crate) fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) => format!("in {}", human(ahead)),
        Err(e) => format!("{} ago", human(e.duration())),
    }
}

/// A short human duration, rounded to the nearest unit: `850ms`, `12s`, `10m`, `3h`,
/// `2d` (9 min 59.9 s reads `10m`, not `9m`).
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 0.9995 {
        return format!("{}ms", (s * 1000.0).round() as u64);
    }
    let secs = s.round() as u64;
    if secs < 60 {
        return format!("{secs}s");
    }
    let mins = (s / 60.0).round() as u64;
    if mins < 60 {
        return format!("{mins}m");
    }
    let hours = (s / 3600.0).round() as u64;
    if hours < 24 {
        return format!("{hours}h");
    }
    format!("{}d", (s / 86_400.0).round() as u64)
}

/// `2026-11-30 16:05:09 UTC`.
pub(crate) fn utc(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_cut() {
        assert_eq!(id_list(&[], 3), "");
        assert_eq!(id_list(&[1, 2], 3), "1, 2");
        assert_eq!(id_list(&[1, 2, 3, 4, 5], 3), "1, 2, 3 (+2 more)");
    }

    #[test]
    fn durations_round_to_the_nearest_unit() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_millis(59_600)), "1m");
        assert_eq!(human(Duration::from_secs(75)), "1m");
        assert_eq!(human(Duration::from_millis(599_900)), "10m");
        assert_eq!(human(Duration::from_secs(2 * 86_400 + 5)), "2d");
        let now = SystemTime::now();
        assert_eq!(
            relative(now + Duration::from_millis(599_950), now),
            "in 10m"
        );
        assert_eq!(relative(now - Duration::from_secs(3 * 3600), now), "3h ago");
    }

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_141_109);
        assert_eq!(utc(t), "2026-12-01 16:05:09 UTC");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc(leap), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn columns_fit_their_content() {
        let rows = vec![
            vec![
                "1".to_string(),
                "a_very_long_kind_name_indeed".into(),
                "x".into(),
            ],
            vec!["12345".to_string(), "k".into(), "".into()],
        ];
        let t = table(&["id", "kind", "note"], &rows, &[0]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "   id  kind                          note");
        assert_eq!(lines[1], "    1  a_very_long_kind_name_indeed  x");
        assert_eq!(lines[2], "12345  k");
    }
}
