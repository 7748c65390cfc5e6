//! Which database errors mean "the database cannot serve us right now" rather than
//! "this statement is wrong".

/// SQLSTATEs that mean the server we are connected to cannot serve writes: it became
/// read-only (a demoted primary after failover), is shutting down, crashed, or does not
/// accept connections yet. The whole class 08 (connection exception) counts too.
pub(crate) fn is_topology_sqlstate(code: &str) -> bool {
    matches!(code, "25006" | "57P01" | "57P02" | "57P03") || code.starts_with("08")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_codes() {
        for c in ["25006", "57P01", "57P02", "57P03", "08006", "08001"] {
            assert!(is_topology_sqlstate(c), "{c}");
        }
        for c in ["23505", "22023", "42P01", "57014"] {
            assert!(!is_topology_sqlstate(c), "{c}");
        }
    }
}
