//! Input validation: job args, priorities, schedules and names.
//!
//! Everything here is a plain function so it can be unit tested and so that bad input is
//! rejected before any SQL runs: a rejected job writes nothing.
//!
//! These constants are the one source of the limits: the SQL function `enqueue()` is
//! rendered from them when it is migrated (see `sql_limits`), so the Rust API and the
//! SQL door cannot drift apart.

use std::time::{Duration, SystemTime};

use serde::Serialize;

mod args_check;
pub(crate) mod sql_limits;

/// Largest serialized job args accepted, in bytes (1 MiB). Bigger payloads belong in a
/// table or object store, referenced from the args.
pub const MAX_ARGS_BYTES: usize = 1024 * 1024;

/// Deepest nesting of arrays and objects accepted in job args.
pub const MAX_ARGS_DEPTH: usize = 64;

/// Furthest into the future a job may be scheduled (about 10 years).
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// Largest `max_attempts` accepted.
pub const MAX_ATTEMPTS_LIMIT: i32 = 1000;

/// Longest per-job timeout accepted (24 hours).
pub const MAX_JOB_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Longest PostgreSQL identifier, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Longest job kind, in bytes.
pub const MAX_KIND_BYTES: usize = 255;

/// Longest unique key, in bytes.
pub const MAX_UNIQUE_KEY_BYTES: usize = 255;

/// Least urgent priority (the most urgent is 0).
pub const MAX_PRIORITY: i16 = i16::MAX;

/// Why a job or a name was rejected. Nothing is written when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A string in the args contains a NUL character, which `jsonb` cannot store.
    #[error("args contain a NUL character (\\u0000), which PostgreSQL jsonb cannot store")]
    NulInArgs,
    /// The args contain NaN or an infinite float, which JSON cannot represent.
    #[error("args contain a non-finite number (NaN or infinity), which JSON cannot represent")]
    NonFiniteNumber,
    /// The serialized args are larger than [`MAX_ARGS_BYTES`].
    #[error("args are {size} bytes, over the {max}-byte limit")]
    ArgsTooLarge {
        /// Size of the serialized args.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The args nest deeper than [`MAX_ARGS_DEPTH`].
    #[error("args nest deeper than {max} levels")]
    ArgsTooDeep {
        /// The limit.
        max: usize,
    },
    /// The args could not be serialized to JSON (e.g. a map with non-string keys).
    #[error("args could not be serialized to JSON: {0}")]
    Serialize(String),
    /// The priority is outside `0..=32767`.
    #[error("priority {0} is out of range: use 0 (most urgent) to 32767")]
    PriorityOutOfRange(i64),
    /// The schedule is not a finite time within [`MAX_SCHEDULE_AHEAD`] from now.
    #[error("run_at is {0}: schedule jobs from 1970 up to 10 years ahead")]
    ScheduleOutOfRange(String),
    /// `max_attempts` is below 1 or above [`MAX_ATTEMPTS_LIMIT`].
    #[error("max_attempts {0} is out of range: use 1 to 1000")]
    MaxAttemptsOutOfRange(i64),
    /// The per-job timeout is zero or longer than [`MAX_JOB_TIMEOUT`].
    #[error("timeout {0:?} is out of range: use more than zero and at most 24 hours")]
    TimeoutOutOfRange(Duration),
    /// A name (schema, queue, kind, lane, unique key) is not acceptable.
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// Which kind of name ("schema", "queue", "kind", …).
        what: &'static str,
        /// The rejected name (truncated for display).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Serializes job args to JSON text after checking they can be stored as `jsonb`:
/// no NUL characters, no non-finite floats, nesting within [`MAX_ARGS_DEPTH`] and size
/// within `max_bytes`.
pub fn serialize_args<T: Serialize + ?Sized>(
    args: &T,
    max_bytes: usize,
) -> Result<String, Rejection> {
    args_check::check(args, MAX_ARGS_DEPTH)?;
    let text = serde_json::to_string(args).map_err(|e| Rejection::Serialize(e.to_string()))?;
    if text.len() > max_bytes {
        return Err(Rejection::ArgsTooLarge {
            size: text.len(),
            max: max_bytes,
        });
    }
    Ok(text)
}

/// Checks a priority (0 to [`MAX_PRIORITY`]) and narrows it to PostgreSQL's `smallint`.
pub fn priority(p: i64) -> Result<i16, Rejection> {
    i16::try_from(p)
        .ok()
        .filter(|p| (0..=MAX_PRIORITY).contains(p))
        .ok_or(Rejection::PriorityOutOfRange(p))
}

/// Checks an absolute schedule against the local clock. The database re-checks against
/// its own clock in `enqueue()`, so a skewed worker clock cannot sneak an absurd value in.
pub fn run_at(at: SystemTime, now: SystemTime) -> Result<(), Rejection> {
    match at.duration_since(now) {
        Ok(ahead) if ahead > MAX_SCHEDULE_AHEAD => {
            Err(Rejection::ScheduleOutOfRange(format!("{ahead:?} ahead")))
        }
        _ => match at.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(_) => Ok(()),
            Err(_) => Err(Rejection::ScheduleOutOfRange("before 1970".into())),
        },
    }
}

/// Checks a relative delay.
pub fn delay(d: Duration) -> Result<(), Rejection> {
    if d > MAX_SCHEDULE_AHEAD {
        return Err(Rejection::ScheduleOutOfRange(format!("{d:?} ahead")));
    }
    Ok(())
}

/// Checks `max_attempts`.
pub fn max_attempts(n: i64) -> Result<i32, Rejection> {
    if (1..=i64::from(MAX_ATTEMPTS_LIMIT)).contains(&n) {
        Ok(n as i32)
    } else {
        Err(Rejection::MaxAttemptsOutOfRange(n))
    }
}

/// Checks a per-job timeout and returns it in whole milliseconds (at least 1).
pub fn timeout(t: Duration) -> Result<i32, Rejection> {
    if t.is_zero() || t > MAX_JOB_TIMEOUT {
        return Err(Rejection::TimeoutOutOfRange(t));
    }
    Ok(t.as_millis().max(1) as i32)
}

/// Checks an SQL-facing name (schema, queue, lane, channel): 1 to 63 bytes of lower-case
/// ASCII letters, digits and `_`, starting with a letter or `_`.
pub fn identifier(what: &'static str, name: &str) -> Result<(), Rejection> {
    let reject = |reason| Rejection::InvalidName {
        what,
        name: shorten(name),
        reason,
    };
    if name.is_empty() {
        return Err(reject("it is empty"));
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(reject("it is longer than 63 bytes"));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(reject("use lower case only"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(reject("use only a-z, 0-9 and _"));
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Err(reject("it must not start with a digit"));
    }
    Ok(())
}

/// Checks a job kind: 1 to 255 bytes of ASCII letters, digits and `_ . : / -`
/// (the same rule `enqueue()` applies in SQL).
pub fn kind(name: &str) -> Result<(), Rejection> {
    let reject = |reason| Rejection::InvalidName {
        what: "kind",
        name: shorten(name),
        reason,
    };
    if name.is_empty() {
        return Err(reject("it is empty"));
    }
    if name.len() > MAX_KIND_BYTES {
        return Err(reject("it is longer than 255 bytes"));
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-');
    if !name.bytes().all(ok) {
        return Err(reject("use only ASCII letters, digits and _ . : / -"));
    }
    Ok(())
}

/// Checks a unique key: 1 to 255 bytes, no NUL.
pub fn unique_key(key: &str) -> Result<(), Rejection> {
    let reject = |reason| Rejection::InvalidName {
        what: "unique key",
        name: shorten(key),
        reason,
    };
    if key.is_empty() {
        return Err(reject("it is empty"));
    }
    if key.len() > MAX_UNIQUE_KEY_BYTES {
        return Err(reject("it is longer than 255 bytes"));
    }
    if key.contains('\0') {
        return Err(reject("it contains a NUL character"));
    }
    Ok(())
}

fn shorten(name: &str) -> String {
    name.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn args_accept_ordinary_json() {
        let text = serialize_args(&json!({"to": "a@b.c", "n": [1, 2.5, null]}), MAX_ARGS_BYTES);
        assert_eq!(text.unwrap(), r#"{"n":[1,2.5,null],"to":"a@b.c"}"#);
    }

    #[test]
    fn args_reject_nul_in_values_and_keys() {
        assert_eq!(
            serialize_args(&json!({"a": "x\0y"}), MAX_ARGS_BYTES),
            Err(Rejection::NulInArgs)
        );
        let mut m = HashMap::new();
        m.insert("k\0".to_string(), 1);
        assert_eq!(
            serialize_args(&m, MAX_ARGS_BYTES),
            Err(Rejection::NulInArgs)
        );
        assert_eq!(
            serialize_args(&'\0', MAX_ARGS_BYTES),
            Err(Rejection::NulInArgs)
        );
    }

    #[test]
    fn args_reject_non_finite_floats() {
        #[derive(Serialize)]
        struct S {
            x: f64,
            y: Vec<f32>,
        }
        let nan = S {
            x: f64::NAN,
            y: vec![],
        };
        assert_eq!(
            serialize_args(&nan, MAX_ARGS_BYTES),
            Err(Rejection::NonFiniteNumber)
        );
        let inf = S {
            x: 1.0,
            y: vec![f32::INFINITY],
        };
        assert_eq!(
            serialize_args(&inf, MAX_ARGS_BYTES),
            Err(Rejection::NonFiniteNumber)
        );
    }

    #[test]
    fn args_reject_oversize_and_deep() {
        let big = "x".repeat(100);
        assert!(matches!(
            serialize_args(&big, 50),
            Err(Rejection::ArgsTooLarge { size: 102, max: 50 })
        ));
        let mut v = json!(1);
        for _ in 0..(MAX_ARGS_DEPTH + 1) {
            v = json!([v]);
        }
        assert_eq!(
            serialize_args(&v, MAX_ARGS_BYTES),
            Err(Rejection::ArgsTooDeep {
                max: MAX_ARGS_DEPTH
            })
        );
    }

    #[test]
    fn args_reject_non_string_map_keys() {
        let mut m = HashMap::new();
        m.insert(vec![1u8], 1);
        assert!(matches!(
            serialize_args(&m, MAX_ARGS_BYTES),
            Err(Rejection::Serialize(_))
        ));
    }

    #[test]
    fn priority_range() {
        assert_eq!(priority(0), Ok(0));
        assert_eq!(priority(32767), Ok(32767));
        assert_eq!(priority(-1), Err(Rejection::PriorityOutOfRange(-1)));
        assert_eq!(priority(32768), Err(Rejection::PriorityOutOfRange(32768)));
    }

    #[test]
    fn schedules() {
        let now = SystemTime::now();
        assert!(run_at(now + Duration::from_secs(3600), now).is_ok());
        assert!(run_at(now - Duration::from_secs(3600), now).is_ok());
        assert!(run_at(now + Duration::from_secs(20 * 366 * 86400), now).is_err());
        assert!(delay(Duration::from_secs(11 * 366 * 86400)).is_err());
        assert!(delay(Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn attempts_and_timeouts() {
        assert_eq!(max_attempts(1), Ok(1));
        assert!(max_attempts(0).is_err());
        assert!(max_attempts(-3).is_err());
        assert!(max_attempts(1001).is_err());
        assert_eq!(timeout(Duration::from_micros(10)), Ok(1));
        assert!(timeout(Duration::ZERO).is_err());
        assert!(timeout(Duration::from_secs(25 * 3600)).is_err());
    }

    #[test]
    fn identifiers() {
        assert!(identifier("schema", "pglane").is_ok());
        assert!(identifier("schema", "_t1").is_ok());
        for bad in ["", "Pglane", "a\"b", "a;b", "a b", "1abc", &"x".repeat(64)] {
            assert!(
                identifier("schema", bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn kinds_and_keys() {
        assert!(kind("send_email").is_ok());
        assert!(kind("Reports.Render:v2/x-y").is_ok());
        for bad in ["", "a'b", "a;b", "a b", "a\0b", "a\"b", &"x".repeat(256)] {
            assert!(kind(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(unique_key("email:a@b.c 2024").is_ok());
        assert!(unique_key("").is_err());
        assert!(unique_key("a\0").is_err());
    }
}
