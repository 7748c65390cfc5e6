//! SQLSTATE classes: which database errors mean "the database cannot serve us right now"
//! rather than "this statement is wrong" (a pure classification, used by the errors and the
//! store alike).

/// SQLSTATEs that mean the server we are connected to cannot serve writes: it became
/// read-only (a demoted primary after failover), is shutting down, crashed, or does not
/// accept connections yet. The whole class 08 (connection exception) counts too.
pub(crate) fn is_topology_sqlstate(code: &str) -> bool {
    matches!(code, "25006" | "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

/// SQLSTATEs that mean the server is out of a resource (class 53: 53300 too many
/// connections, 53200 out of memory, 53100 disk full, 53400 configuration limit). Not a
/// topology change: the server is there and answering, so the engine backs off and
/// retries with the connections it has instead of retiring them.
pub(crate) fn is_exhaustion_sqlstate(code: &str) -> bool {
    code.starts_with("53")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_codes() {
        for c in ["25006", "57P01", "57P02", "57P03", "08006", "08001"] {
            assert!(is_topology_sqlstate(c), "{c}");
        }
        for c in ["23505", "22023", "42P01", "57014", "53300", "53200"] {
            assert!(!is_topology_sqlstate(c), "{c}");
        }
    }

    #[test]
    fn exhaustion_codes() {
        for c in ["53300", "53000", "53100", "53200", "53400"] {
            assert!(is_exhaustion_sqlstate(c), "{c}");
            assert!(!is_topology_sqlstate(c), "{c}");
        }
        for c in ["57P03", "08006", "25006", "54000"] {
            assert!(!is_exhaustion_sqlstate(c), "{c}");
        }
    }
}
