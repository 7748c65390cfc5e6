//! Partial matching of job args, for `assert_enqueued!` and `refute_enqueued!`.

use serde_json::Value;

/// Whether `actual` contains `expected`: every key of an expected object is in the
/// actual object with a value that contains the expected one (other keys are ignored);
/// arrays match element by element and must have the same length; anything else must be
/// equal (numbers by value: `1` matches `1.0`).
///
/// ```
/// use pglane::testing::args_contain;
/// use serde_json::json;
/// let args = json!({"to": "ada@example.com", "template": "welcome", "tags": ["a", "b"]});
/// assert!(args_contain(&args, &json!({"to": "ada@example.com"})));
/// assert!(!args_contain(&args, &json!({"to": "bob@example.com"})));
/// ```
pub fn args_contain(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| args_contain(av, ev))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| args_contain(av, ev))
        }
        (Value::Number(a), Value::Number(e)) => a == e || a.as_f64() == e.as_f64(),
        (a, e) => a == e,
    }
}

/// Asserts that a job of a kind is enqueued (live and available, due or scheduled) in a
/// [`TestSchema`](crate::testing::TestSchema), optionally with args that contain the
/// given JSON (see [`args_contain`]). Use inside an async test; it awaits the look-up.
///
/// ```no_run
/// # #[derive(serde::Serialize, serde::Deserialize)] struct SendEmail { to: String }
/// # impl pglane::Job for SendEmail { const KIND: &'static str = "send_email";
/// #   async fn run(self, _: pglane::JobContext) -> Result<(), pglane::JobError> { Ok(()) } }
/// # async fn f(db: pglane::testing::TestSchema) {
/// use pglane::{assert_enqueued, refute_enqueued};
/// use serde_json::json;
/// assert_enqueued!(db, SendEmail);
/// assert_enqueued!(db, SendEmail, json!({"to": "ada@example.com"}));
/// refute_enqueued!(db, SendEmail, json!({"to": "bob@example.com"}));
/// # }
/// ```
#[macro_export]
macro_rules! assert_enqueued {
    ($db:expr, $kind:ty) => {
        $crate::assert_enqueued!($db, $kind, ::serde_json::json!({}))
    };
    ($db:expr, $kind:ty, $args:expr) => {{
        let expected: ::serde_json::Value = $args;
        let jobs = $db
            .enqueued::<$kind>()
            .await
            .expect("looking up enqueued jobs");
        if !jobs
            .iter()
            .any(|j| $crate::testing::args_contain(&j.args, &expected))
        {
            panic!(
                "no `{}` job enqueued with args containing {}; enqueued: {:?}",
                <$kind as $crate::Job>::KIND,
                expected,
                jobs.iter().map(|j| &j.args).collect::<Vec<_>>()
            );
        }
    }};
}

/// Asserts that no job of a kind is enqueued (live and available), or none whose args
/// contain the given JSON. See [`assert_enqueued!`].
#[macro_export]
macro_rules! refute_enqueued {
    ($db:expr, $kind:ty) => {
        $crate::refute_enqueued!($db, $kind, ::serde_json::json!({}))
    };
    ($db:expr, $kind:ty, $args:expr) => {{
        let expected: ::serde_json::Value = $args;
        let jobs = $db
            .enqueued::<$kind>()
            .await
            .expect("looking up enqueued jobs");
        if let Some(j) = jobs
            .iter()
            .find(|j| $crate::testing::args_contain(&j.args, &expected))
        {
            panic!(
                "a `{}` job is enqueued with args containing {}: job {} with {}",
                <$kind as $crate::Job>::KIND,
                expected,
                j.id,
                j.args
            );
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_match_on_the_keys_given() {
        let a = json!({"to": "ada", "n": 1, "deep": {"x": 1, "y": 2}});
        assert!(args_contain(&a, &json!({})));
        assert!(args_contain(&a, &json!({"to": "ada"})));
        assert!(args_contain(&a, &json!({"deep": {"y": 2}})));
        assert!(!args_contain(&a, &json!({"deep": {"y": 3}})));
        assert!(!args_contain(&a, &json!({"missing": null})));
        assert!(args_contain(&a, &json!({"n": 1.0})));
        assert!(!args_contain(&a, &json!({"n": "1"})));
    }

    #[test]
    fn arrays_match_element_by_element() {
        let a = json!({"tags": [{"k": 1, "v": 2}, "b"]});
        assert!(args_contain(&a, &json!({"tags": [{"k": 1}, "b"]})));
        assert!(!args_contain(&a, &json!({"tags": [{"k": 1}]})));
        assert!(!args_contain(&a, &json!({"tags": ["b", {"k": 1}]})));
    }

    #[test]
    fn scalars_and_non_objects() {
        assert!(args_contain(&json!("x"), &json!("x")));
        assert!(!args_contain(&json!("x"), &json!({})));
        assert!(args_contain(&json!(null), &json!(null)));
    }
}
