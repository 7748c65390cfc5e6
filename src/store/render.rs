//! Rendering statements for a schema. Every file under `sql/` is valid SQL as written:
//! the markers are a comment, a quoted identifier and a string literal, so editors and
//! `psql` can read the files, and rendering only fills in names.

/// Renders a statement for a schema: `/* TEMPLATE: schema */` becomes `"schema".`,
/// `{{schema}}` the bare schema name (inside double quotes in the file), and
/// `{{channel}}` the NOTIFY channel, and limit markers such as `{{max_args_depth}}` the
/// constants of [`crate::validate`]. Both names are validated identifiers, so they need
/// no further escaping inside double or single quotes.
pub(crate) fn render(sql: &str, schema: &str, channel: &str) -> String {
    crate::validate::sql_limits::render(sql)
        .replace("/* TEMPLATE: schema */", &format!("\"{schema}\"."))
        .replace("{{schema}}", schema)
        .replace("{{channel}}", channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement file opens with a comment saying why it is shaped so, holds one
    /// statement, and renders with no marker left.
    #[test]
    fn every_statement_file_renders_and_explains_itself() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/sql");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("src/store/sql") {
            let path = entry.expect("an entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("sql") {
                continue;
            }
            seen += 1;
            let name = path.display().to_string();
            let sql = std::fs::read_to_string(&path).expect("readable");
            assert!(sql.starts_with("-- "), "{name} opens without a comment");
            let code: Vec<&str> = sql
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect();
            assert!(
                code.iter().all(|l| !l.contains(';')),
                "{name} holds more than one statement"
            );
            let rendered = render(&sql, "s1", "s1_jobs");
            assert!(
                !rendered.contains("TEMPLATE") && !rendered.contains("{{"),
                "{name} keeps a marker: {rendered}"
            );
        }
        assert!(seen > 20, "only {seen} statement files found in {dir}");
    }

    #[test]
    fn markers_become_quoted_names() {
        let sql = "SELECT 1 FROM /* TEMPLATE: schema */jobs, \"{{schema}}\", '{{channel}}'";
        assert_eq!(
            render(sql, "s1", "s1_jobs"),
            "SELECT 1 FROM \"s1\".jobs, \"s1\", 's1_jobs'"
        );
    }
}
