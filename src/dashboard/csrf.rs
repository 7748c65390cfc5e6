//! CSRF protection for the dashboard's actions: a double-submit token. Every page sets a
//! random token in an `HttpOnly`, `SameSite=Strict` cookie scoped to the dashboard's
//! path and writes the same token into each of its forms; an action runs only when the
//! form's token equals the cookie's (compared in constant time). A page of another site
//! can neither read the cookie nor, with `SameSite=Strict`, make the browser send it.
//! Requests the browser marks as cross-site (`Sec-Fetch-Site`) are refused too.

/// The cookie's name.
pub(crate) const COOKIE: &str = "pglane_csrf";

/// A fresh token: 32 random bytes from the operating system, as hex.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator failing is unheard of; a token of fastrand bytes then still
    // differs per visitor (the cookie stays unreadable to other sites either way).
    if getrandom::fill(&mut bytes).is_err() {
        bytes.iter_mut().for_each(|b| *b = fastrand::u8(..));
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token of the `Cookie` header, if it holds a well-formed one.
pub(crate) fn from_cookie_header(header: &str) -> Option<String> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| well_formed(v))
}

fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The `Set-Cookie` value for `token`, scoped to the dashboard's `path`.
pub(crate) fn set_cookie(token: &str, path: &str) -> String {
    let path = if path.is_empty() { "/" } else { path };
    format!("{COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict")
}

/// Whether a form's token matches the cookie's: both present, well formed and equal.
pub(crate) fn matches(cookie: Option<&str>, form: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (cookie, form) else {
        return false;
    };
    if !well_formed(a) || !well_formed(b) {
        return false;
    }
    // Constant time: every byte is compared whatever the first difference.
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Whether the browser says the request came from another site.
pub(crate) fn cross_site(sec_fetch_site: Option<&str>) -> bool {
    matches!(sec_fetch_site, Some("cross-site") | Some("same-site"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_round_trip_through_the_cookie() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(well_formed(&a));
        let header = format!("other=1; {COOKIE}={a}; x=y");
        assert_eq!(from_cookie_header(&header), Some(a.clone()));
        assert_eq!(from_cookie_header("pglane_csrf=short"), None);
        assert!(
            set_cookie(&a, "/admin/jobs").contains("Path=/admin/jobs; HttpOnly; SameSite=Strict")
        );
        assert!(set_cookie(&a, "").contains("Path=/;"));
    }

    #[test]
    fn only_equal_well_formed_tokens_match() {
        let t = new_token();
        assert!(matches(Some(&t), Some(&t)));
        assert!(!matches(Some(&t), Some(&new_token())));
        assert!(!matches(None, Some(&t)));
        assert!(!matches(Some(&t), None));
        assert!(!matches(Some("ab"), Some("ab")));
        assert!(cross_site(Some("cross-site")));
        assert!(!cross_site(Some("same-origin")));
        assert!(!cross_site(None));
    }
}
