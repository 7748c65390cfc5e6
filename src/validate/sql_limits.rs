//! The validation limits as SQL template markers, so `enqueue()` in SQL checks exactly
//! the numbers the Rust API checks.
//!
//! A migration writes `{{max_args_depth}}` where it means [`MAX_ARGS_DEPTH`]; rendering
//! replaces every marker with the constant's value. Changing a limit in Rust therefore
//! changes the SQL function the next time it is migrated, and a test renders every
//! migration to prove no marker is left unfilled.

use super::{
    MAX_ARGS_BYTES, MAX_ARGS_DEPTH, MAX_ATTEMPTS_LIMIT, MAX_IDENTIFIER_BYTES, MAX_JOB_TIMEOUT,
    MAX_KIND_BYTES, MAX_PRIORITY, MAX_SCHEDULE_AHEAD, MAX_UNIQUE_KEY_BYTES,
};

/// Every limit marker with the value it stands for.
pub(crate) fn markers() -> [(&'static str, String); 9] {
    [
        ("{{max_args_bytes}}", MAX_ARGS_BYTES.to_string()),
        ("{{max_args_depth}}", MAX_ARGS_DEPTH.to_string()),
        ("{{max_priority}}", MAX_PRIORITY.to_string()),
        ("{{max_attempts}}", MAX_ATTEMPTS_LIMIT.to_string()),
        (
            "{{max_timeout_ms}}",
            MAX_JOB_TIMEOUT.as_millis().to_string(),
        ),
        (
            "{{max_schedule_ahead_s}}",
            MAX_SCHEDULE_AHEAD.as_secs().to_string(),
        ),
        ("{{max_kind_bytes}}", MAX_KIND_BYTES.to_string()),
        ("{{max_identifier_bytes}}", MAX_IDENTIFIER_BYTES.to_string()),
        ("{{max_unique_key_bytes}}", MAX_UNIQUE_KEY_BYTES.to_string()),
    ]
}

/// Fills every limit marker in `sql`.
pub(crate) fn render(sql: &str) -> String {
    let mut out = sql.to_string();
    for (marker, value) in markers() {
        if out.contains(marker) {
            out = out.replace(marker, &value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_become_the_rust_constants() {
        let sql = "depth {{max_args_depth}}, bytes {{max_args_bytes}}, \
                   ahead {{max_schedule_ahead_s}} s, timeout {{max_timeout_ms}} ms";
        assert_eq!(
            render(sql),
            "depth 64, bytes 1048576, ahead 316224000 s, timeout 86400000 ms"
        );
    }

    #[test]
    fn every_migration_is_filled() {
        for sql in [
            include_str!("../../migrations/0001_jobs.sql"),
            include_str!("../../migrations/0002_limits_and_vacuum.sql"),
        ] {
            let out = render(sql);
            assert!(!out.contains("{{max_"), "unfilled limit marker");
        }
        let m2 = render(include_str!("../../migrations/0002_limits_and_vacuum.sql"));
        for (_, value) in markers() {
            assert!(m2.contains(&value), "0002 does not check the limit {value}");
        }
    }
}
