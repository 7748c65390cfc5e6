//! W3C trace context (`traceparent`) for jobs: parsed, formatted and derived here as
//! plain functions, stored with the job (the `metadata` column, migration 3), and
//! linked from the run's span. No tracing backend is needed: the ids travel as text,
//! so any OpenTelemetry setup (or a log search) can follow a job from the request that
//! enqueued it to its run.
//!
//! Format: `00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`, lower case, ids
//! not all zero (<https://www.w3.org/TR/trace-context/#traceparent-header>).

use std::fmt;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) trace_id: u128,
    pub(crate) parent_id: u64,
    pub(crate) flags: u8,
}

impl TraceParent {
    /// Parses version `00` of the header; `None` for anything else.
    pub(crate) fn parse(s: &str) -> Option<TraceParent> {
        let b = s.as_bytes();
        if b.len() != 55 || &s[..3] != "00-" || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let hex = |part: &str| {
            part.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        };
        let (trace, parent, flags) = (&s[3..35], &s[36..52], &s[53..55]);
        if !(hex(trace) && hex(parent) && hex(flags)) {
            return None;
        }
        let tp = TraceParent {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            parent_id: u64::from_str_radix(parent, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (tp.trace_id != 0 && tp.parent_id != 0).then_some(tp)
    }

    /// A new trace: random ids, sampled.
    pub(crate) fn new_root() -> TraceParent {
        TraceParent {
            trace_id: fastrand::u128(1..),
            parent_id: fastrand::u64(1..),
            flags: 1,
        }
    }

    /// The same trace with a new span id (a span of this trace that continues it).
    pub(crate) fn child(self) -> TraceParent {
        TraceParent {
            parent_id: fastrand::u64(1..),
            ..self
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_the_w3c_example() {
        let tp = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(tp.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tp.parent_id, 0x00f067aa0ba902b7);
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), EXAMPLE);
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn roots_and_children() {
        let root = TraceParent::new_root();
        assert_eq!(TraceParent::parse(&root.to_string()), Some(root));
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.parent_id, 0);
        assert_eq!(child.flags, root.flags);
    }
}
