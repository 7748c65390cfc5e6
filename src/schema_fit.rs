//! Whether an engine may run against the schema it finds: the schema must hold every
//! migration this build has, and may be newer only as far as the newer migrations allow.
//!
//! Each migration records `oldest_engine`: the oldest engine (by the
//! [`SCHEMA_VERSION`](crate::SCHEMA_VERSION) it was built for) that still works with the
//! schema once the migration is applied. A migration that only adds (a nullable column,
//! a table, an index) keeps the previous release's engines working; one that changes
//! what they rely on raises it to its own version. So an engine runs against a newer
//! schema, within that window, and refuses one outside it with a clear error, instead of
//! demanding an exact match (which made a rolling upgrade impossible).

use crate::error::{Error, Result};

/// One row of the schema's migration record: its version, and the oldest engine it
/// allows (`None` for rows written before pglane recorded it: then its own version).
pub(crate) type Applied = (i32, Option<i32>);

/// How the schema found fits this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SchemaFit {
    /// Every migration this build needs is there, and nothing newer forbids it.
    Fits,
    /// Migrations this build needs are missing: run `migrate` first.
    Behind { found: i32 },
    /// A newer migration needs engines built for `oldest_engine` or later.
    TooNew { found: i32, oldest_engine: i32 },
}

/// Judges the applied migrations against `needed` (this build's versions), for an
/// engine built for `this` schema version.
pub(crate) fn fit(applied: &[Applied], needed: &[i32], this: i32) -> SchemaFit {
    let found = applied.iter().map(|(v, _)| *v).max().unwrap_or(0);
    let has = |v: &i32| applied.iter().any(|(a, _)| a == v);
    if !needed.iter().all(has) {
        // The schema's version: the newest migration with every one before it applied
        // (a schema that has 4 and later but not 3 is at version 2).
        let complete = needed.iter().take_while(|v| has(v)).last().copied();
        return SchemaFit::Behind {
            found: complete.unwrap_or(0),
        };
    }
    let oldest_engine = applied
        .iter()
        .map(|(v, oldest)| oldest.unwrap_or(*v))
        .max()
        .unwrap_or(0);
    if oldest_engine > this {
        SchemaFit::TooNew {
            found,
            oldest_engine,
        }
    } else {
        SchemaFit::Fits
    }
}

impl SchemaFit {
    /// `Ok` if it fits, else the error an operator can act on.
    pub(crate) fn into_result(self, schema: &str, this: i32) -> Result<()> {
        match self {
            SchemaFit::Fits => Ok(()),
            SchemaFit::Behind { found } => Err(Error::NotMigrated {
                schema: schema.to_string(),
                found,
                expected: this,
            }),
            SchemaFit::TooNew {
                found,
                oldest_engine,
            } => Err(Error::SchemaTooNew {
                schema: schema.to_string(),
                found,
                oldest_engine,
                supported: this,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_fits_when_complete_and_not_too_new() {
        let needed = [1, 2, 4];
        let rows = |r: &[(i32, Option<i32>)]| r.to_vec();
        assert_eq!(
            fit(&rows(&[(1, None), (2, None), (4, Some(4))]), &needed, 4),
            SchemaFit::Fits
        );
        // Never migrated, or missing the newest: behind.
        assert_eq!(fit(&[], &needed, 4), SchemaFit::Behind { found: 0 });
        assert_eq!(
            fit(&rows(&[(1, None), (2, None)]), &needed, 4),
            SchemaFit::Behind { found: 2 }
        );
        // A middle migration missing: at the version before the gap.
        assert_eq!(
            fit(
                &rows(&[(1, None), (2, None), (4, Some(4))]),
                &[1, 2, 3, 4],
                4
            ),
            SchemaFit::Behind { found: 2 }
        );
        // A newer release's migration that keeps this engine working.
        assert_eq!(
            fit(
                &rows(&[(1, None), (2, None), (4, None), (5, Some(4))]),
                &needed,
                4
            ),
            SchemaFit::Fits
        );
        // One that does not: refused, naming the oldest engine it allows.
        assert_eq!(
            fit(
                &rows(&[(1, None), (2, None), (4, None), (5, Some(5))]),
                &needed,
                4
            ),
            SchemaFit::TooNew {
                found: 5,
                oldest_engine: 5
            }
        );
        // Rows recorded before `oldest_engine` existed count as their own version.
        assert_eq!(
            fit(
                &rows(&[(1, None), (2, None), (4, None), (5, None)]),
                &needed,
                4
            ),
            SchemaFit::TooNew {
                found: 5,
                oldest_engine: 5
            }
        );
    }

    #[test]
    fn the_errors_say_what_to_do() {
        let e = SchemaFit::TooNew {
            found: 9,
            oldest_engine: 8,
        }
        .into_result("jobs", 4)
        .unwrap_err()
        .to_string();
        assert!(e.contains("upgrade pglane"), "{e}");
        let e = SchemaFit::Behind { found: 2 }
            .into_result("jobs", 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pglane migrate"), "{e}");
    }
}
