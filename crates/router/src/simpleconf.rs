//! A reader for the subset of Perl's Config::General that photosrv reads through
//! dgryski/go-simpleconf.
//!
//! - Lines are left-trimmed; blank lines are skipped; `#` starts a comment unless written `\#`.
//! - `<type>` or `<type name>` opens a block (type and name lower-cased); `</type>` closes it
//!   (an extra word after the type is tolerated). `<type name>` nests a block `name` in `type`.
//! - Items are `key = value` or `key value`; the key is lower-cased, the value trimmed and
//!   stripped of surrounding double quotes; `yes`/`true` read as `1`, `no`/`false` as `0`;
//!   `\$` becomes `$`. A repeated key keeps every value, in order.
//! - A trailing `\` continues a line; `key <<EOF` starts a here-document ended by `EOF`;
//!   `include FILE` reads FILE (relative to the including file's directory).
//!
//! Unlike go-simpleconf, a malformed line (an unclosed `<`, a stray or mismatched close tag, an
//! unterminated block or here-document) is an error that names the file and line.

use std::path::{Path, PathBuf};

use crate::RouteError;

/// One entry of a block: a value or a nested block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `key value`, and where it was written.
    Value(String, Line),
    /// `<key> ... </key>`.
    Block(Block),
}

/// Where a value was written, so that a bad value's error names its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The file (an included file for values written there).
    pub file: PathBuf,
    /// 1-based line number (a continued line: its first line).
    pub line: usize,
}

impl Line {
    /// An error about the value on this line.
    pub fn error(&self, message: impl Into<String>) -> RouteError {
        syntax(&self.file, self.line, message)
    }

    /// This line as a message about `from` names it: `line 5` in the same file,
    /// `other.cfg:5` in another.
    pub fn place(&self, from: &Line) -> String {
        if self.file == from.file {
            format!("line {}", self.line)
        } else {
            format!("{}:{}", self.file.display(), self.line)
        }
    }
}

/// A block: its entries in file order (a key may repeat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    /// `(key, node)` pairs, keys lower-cased.
    pub entries: Vec<(String, Node)>,
}

impl Block {
    /// The first block named `key`.
    pub fn block(&self, key: &str) -> Option<&Block> {
        self.entries.iter().find_map(|(k, n)| match n {
            Node::Block(b) if k == key => Some(b),
            _ => None,
        })
    }

    /// Follows a `>`-separated path of block names (`photosrv>migration`).
    pub fn path(&self, path: &str) -> Option<&Block> {
        path.split('>')
            .filter(|p| !p.is_empty())
            .try_fold(self, |b, key| b.block(key))
    }

    /// Every value written for `key`, in order.
    pub fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries.iter().filter_map(move |(k, n)| match n {
            Node::Value(v, _) if k == key => Some(v.as_str()),
            _ => None,
        })
    }

    /// The values of this block with their lines, in order (nested blocks skipped).
    pub fn items(&self) -> impl Iterator<Item = (&str, &str, &Line)> {
        self.entries.iter().filter_map(|(k, n)| match n {
            Node::Value(v, at) => Some((k.as_str(), v.as_str(), at)),
            Node::Block(_) => None,
        })
    }

    fn insert_block(&mut self, key: String) -> &mut Block {
        self.entries.push((key, Node::Block(Block::default())));
        match self.entries.last_mut() {
            Some((_, Node::Block(b))) => b,
            _ => unreachable!("just pushed a block"),
        }
    }
}

/// Parses `text` (read from `file`, which names it in errors and anchors `include`).
pub fn parse(text: &str, file: &Path) -> Result<Block, RouteError> {
    let mut root = Block::default();
    let mut stack: Vec<(String, usize)> = Vec::new();
    parse_into(text, file, &mut root, &mut stack, 0)?;
    if let Some((open, line)) = stack.last() {
        return Err(syntax(file, *line, format!("<{open}> is never closed")));
    }
    Ok(root)
}

/// Reads and parses the file at `path`.
pub fn parse_file(path: &Path) -> Result<Block, RouteError> {
    let text = std::fs::read_to_string(path).map_err(|e| RouteError::io(path, e))?;
    parse(&text, path)
}

fn syntax(file: &Path, line: usize, message: impl Into<String>) -> RouteError {
    RouteError::Syntax {
        file: file.display().to_string(),
        line,
        message: message.into(),
    }
}

/// The innermost open block: `depth` steps down the last entries from `root`.
fn current(root: &mut Block, depth: usize) -> &mut Block {
    let mut b = root;
    for _ in 0..depth {
        b = match b.entries.last_mut() {
            Some((_, Node::Block(inner))) => inner,
            _ => unreachable!("the stack mirrors the open blocks"),
        };
    }
    b
}

fn parse_into(
    text: &str,
    file: &Path,
    root: &mut Block,
    stack: &mut Vec<(String, usize)>,
    include_depth: usize,
) -> Result<(), RouteError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((no, raw)) = lines.next() {
        let mut line = strip_comment(raw.trim_start());
        // Continuation lines.
        while line.trim_end().ends_with('\\') && !line.trim_end().ends_with("\\\\") {
            let t = line.trim_end();
            let mut joined = t[..t.len() - 1].to_string();
            match lines.next() {
                Some((_, next)) => joined.push_str(&strip_comment(next.trim_start())),
                None => return Err(syntax(file, no, "a `\\` continues past the end of file")),
            }
            line = joined;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("</") {
            let Some(inner) = rest.strip_suffix('>') else {
                return Err(syntax(file, no, format!("unterminated tag {line:?}")));
            };
            let name = inner.split_whitespace().next().unwrap_or("").to_lowercase();
            let mut popped = stack.pop();
            // `<type name>` pushed a marker for its inner level; `</type>` closes both.
            if let Some((open, _)) = &popped
                && open.strip_prefix('\u{1}') == Some(name.as_str())
            {
                popped = stack.pop();
            }
            match popped {
                Some((open, _)) if open == name => {}
                Some((open, at)) => {
                    return Err(syntax(
                        file,
                        no,
                        format!(
                            "</{name}> closes <{}> opened on line {at}",
                            open.trim_start_matches('\u{1}')
                        ),
                    ));
                }
                None => return Err(syntax(file, no, format!("</{name}> closes nothing"))),
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix('<')
            && !rest.starts_with('<')
        {
            let Some(inner) = rest.strip_suffix('>') else {
                return Err(syntax(file, no, format!("unterminated tag {line:?}")));
            };
            let mut words = inner.split_whitespace();
            let Some(kind) = words.next() else {
                return Err(syntax(file, no, "empty tag <>"));
            };
            let kind = kind.to_lowercase();
            let name = words.collect::<Vec<_>>().join(" ").to_lowercase();
            let depth = stack.len();
            let parent = current(root, depth);
            let b = parent.insert_block(kind.clone());
            if !name.is_empty() {
                // `<type name>`: the entries go in type > name. Represent as a block holding
                // one block, and track both levels so `</type>` closes them together.
                b.insert_block(name);
                stack.push((kind.clone(), no));
                stack.push((format!("\u{1}{kind}"), no));
            } else {
                stack.push((kind, no));
            }
            continue;
        }
        let (key, value) = split_item(line);
        let key = key.to_lowercase();
        if key == "include" && !value.is_empty() {
            if include_depth > 8 {
                return Err(syntax(file, no, "includes nest more than 8 deep"));
            }
            let inc = resolve_include(file, &value);
            let text = std::fs::read_to_string(&inc).map_err(|e| RouteError::io(&inc, e))?;
            parse_into(&text, &inc, root, stack, include_depth + 1)?;
            continue;
        }
        let value = if let Some(tag) = value.strip_prefix("<<") {
            let tag = tag.trim();
            let mut body = Vec::new();
            loop {
                match lines.next() {
                    Some((_, l)) if l.trim() == tag => break,
                    Some((_, l)) => body.push(l.trim_start().to_string()),
                    None => {
                        return Err(syntax(
                            file,
                            no,
                            format!("here-document <<{tag} never ends"),
                        ));
                    }
                }
            }
            body.join("\n")
        } else {
            value
        };
        let depth = stack.len();
        current(root, depth).entries.push((
            key,
            Node::Value(
                clean_value(&value),
                Line {
                    file: file.to_path_buf(),
                    line: no,
                },
            ),
        ));
    }
    Ok(())
}

fn resolve_include(file: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    file.parent().unwrap_or(Path::new(".")).join(p)
}

/// Drops a comment: `#` to the end of the line, unless escaped as `\#` (which becomes `#`).
fn strip_comment(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'#') => {
                out.push('#');
                chars.next();
            }
            '#' => break,
            c => out.push(c),
        }
    }
    out
}

/// `key = value` or `key value`.
fn split_item(line: &str) -> (&str, String) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = &line[..end];
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (key, rest.to_string())
}

fn clean_value(v: &str) -> String {
    let v = v.trim();
    let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    };
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => return "1".into(),
        "no" | "false" => return "0".into(),
        _ => {}
    }
    v.replace("\\$", "$")
}
