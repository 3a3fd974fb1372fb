//! The corpus rule of `harness.corpus`: files sorted by path bytes, the summary placeholders, the corpus
//! hash, and `{{name}}` rendering. Change both sides or neither.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::body::sha256_hex;

/// One ingested file, as `harness.corpus.CorpusFile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusFile {
    pub path: String,
    pub kind: &'static str,
    pub size_bytes: u64,
    pub lines: u64,
}

/// Python's `PurePath(path).suffix`: the last `.xxx` of the final component, not a leading dot, not a
/// trailing lone dot.
fn suffix(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(i) if i > 0 && i < name.len() - 1 => &name[i..],
        _ => "",
    }
}

fn kind_of(path: &str) -> &'static str {
    match suffix(path) {
        ".csv" => "csv",
        ".json" => "json",
        ".md" => "md",
        _ => "other",
    }
}

/// Files (relative POSIX path, bytes) sorted by path bytes, described.
pub fn describe(files: &[(String, Vec<u8>)]) -> Vec<CorpusFile> {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    sorted
        .into_iter()
        .map(|(path, data)| CorpusFile {
            path: path.clone(),
            kind: kind_of(path),
            size_bytes: data.len() as u64,
            lines: data.iter().filter(|b| **b == b'\n').count() as u64,
        })
        .collect()
}

/// sha256 over `path NUL sha256hex(content) LF` for each file in path-byte order.
pub fn corpus_sha256(files: &[(String, Vec<u8>)]) -> String {
    let mut sorted: Vec<&(String, Vec<u8>)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut digest = Sha256::new();
    for (path, data) in sorted {
        digest.update(path.as_bytes());
        digest.update(b"\0");
        digest.update(sha256_hex(data).as_bytes());
        digest.update(b"\n");
    }
    digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The prompt placeholders, in the order Python's `summarize` builds them (rendering replaces in this order).
pub fn summarize(entries: &[CorpusFile]) -> Vec<(String, String)> {
    let count = |kind: &str| entries.iter().filter(|e| e.kind == kind).count();
    let lines: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "- {} ({}, {} bytes, {} lines)",
                e.path, e.kind, e.size_bytes, e.lines
            )
        })
        .collect();
    vec![
        ("file_count".into(), entries.len().to_string()),
        ("csv_count".into(), count("csv").to_string()),
        ("json_count".into(), count("json").to_string()),
        ("md_count".into(), count("md").to_string()),
        (
            "total_bytes".into(),
            entries
                .iter()
                .map(|e| e.size_bytes)
                .sum::<u64>()
                .to_string(),
        ),
        ("file_summary".into(), lines.join("\n")),
    ]
}

/// Replace `{{name}}` placeholders one key after the other; unknown placeholders stay visible.
pub fn render(template: &str, values: &[(String, String)]) -> String {
    let mut out = template.to_owned();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// Every file under `dir` whose name does not start with a dot, with its path relative to `dir` (POSIX
/// separators), like `harness.agents.workflow.ingest` (`rglob("*")`, symlinked folders not followed).
pub fn read_corpus(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                walk(root, &path, out)?;
                continue;
            }
            // `is_file()` follows a symlink to a file.
            if !path.is_file() || entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let rel = path.strip_prefix(root).expect("walked under root");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((rel.join("/"), std::fs::read(&path)?));
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_like_pathlib() {
        assert_eq!(suffix("a/b.csv"), ".csv");
        assert_eq!(suffix("a/.csv"), "");
        assert_eq!(suffix("a/b."), "");
        assert_eq!(suffix("a.d/b"), "");
        assert_eq!(kind_of("x/y.tar.md"), "md");
    }

    #[test]
    fn render_replaces_in_order_and_keeps_unknowns() {
        let values = vec![
            ("a".to_string(), "{{b}}".to_string()),
            ("b".to_string(), "B".to_string()),
        ];
        assert_eq!(render("{{a}} {{c}}", &values), "B {{c}}");
    }

    #[test]
    fn describe_sorts_by_bytes_and_counts_lines() {
        let files = vec![
            ("b.md".to_string(), b"x\ny\n".to_vec()),
            ("B.csv".to_string(), b"1".to_vec()),
        ];
        let d = describe(&files);
        assert_eq!(d[0].path, "B.csv");
        assert_eq!(d[0].lines, 0);
        assert_eq!(d[1].lines, 2);
        let s = summarize(&d);
        assert_eq!(s[4].1, "5");
        assert_eq!(
            s[5].1,
            "- B.csv (csv, 1 bytes, 0 lines)\n- b.md (md, 4 bytes, 2 lines)"
        );
    }
}
