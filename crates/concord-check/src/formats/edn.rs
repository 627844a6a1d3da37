//! A small EDN reader: just enough of Clojure's data notation for Jepsen and Knossos histories.
//!
//! Supported: `nil`, `true`/`false`, integers (with an optional `N`), floats, strings (with the usual
//! escapes), characters (`\a`), keywords (`:invoke`, `:jepsen.util/x`), symbols, lists `( )`,
//! vectors `[ ]`, sets `#{ }`, maps `{ }`, tagged literals (`#inst "..."`: the tag is kept, the
//! value read), the discard `#_`, comments `;`, and commas as whitespace.
//!
//! Written by hand rather than taken from a crate because it is ~300 lines, has no dependencies,
//! reports line numbers, and – the point for a checker fed arbitrary files – never panics: nesting
//! is limited to [`DEPTH_MAX`] (so `[[[[...` cannot overflow the stack), numbers that do not fit
//! are errors, and every slice is taken at a character boundary.

use std::fmt;

/// Deepest nesting accepted. Histories nest three or four levels; the limit only stops abuse.
pub const DEPTH_MAX: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub enum Edn {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Char(char),
    /// Without the leading colon.
    Keyword(String),
    Symbol(String),
    List(Vec<Edn>),
    Vector(Vec<Edn>),
    Set(Vec<Edn>),
    Map(Vec<(Edn, Edn)>),
    Tagged(String, Box<Edn>),
}

impl Edn {
    /// The value under keyword `:name` in a map.
    pub fn get(&self, name: &str) -> Option<&Edn> {
        match self {
            Edn::Map(entries) => {
                entries.iter().find(|(k, _)| matches!(k, Edn::Keyword(k) if k == name)).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Edn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = |f: &mut fmt::Formatter<'_>, open: &str, items: &[Edn], close: &str| {
            f.write_str(open)?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(close)
        };
        match self {
            Edn::Nil => f.write_str("nil"),
            Edn::Bool(b) => write!(f, "{b}"),
            Edn::Int(i) => write!(f, "{i}"),
            Edn::Float(x) => write!(f, "{x}"),
            Edn::Str(s) => write!(f, "{s:?}"),
            Edn::Char(c) => write!(f, "\\{c}"),
            Edn::Keyword(k) => write!(f, ":{k}"),
            Edn::Symbol(s) => f.write_str(s),
            Edn::List(items) => seq(f, "(", items, ")"),
            Edn::Vector(items) => seq(f, "[", items, "]"),
            Edn::Set(items) => seq(f, "#{", items, "}"),
            Edn::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k} {v}")?;
                }
                f.write_str("}")
            }
            Edn::Tagged(tag, value) => write!(f, "#{tag} {value}"),
        }
    }
}

/// A reading error at a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdnError {
    pub line: usize,
    /// 1-based column (in characters) where the problem was found.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for EdnError {
    /// `column 7: unexpected `]`` – the line is reported by the caller, next to the file name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// A cursor over EDN text that reads one form at a time.
pub struct Reader<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    /// Byte offset where the current line starts (for columns).
    line_start: usize,
}

impl<'a> Reader<'a> {
    /// `first_line` is the line number of the start of `text` (1 for a whole file).
    pub fn new(text: &'a str, first_line: usize) -> Reader<'a> {
        Reader { text, pos: 0, line: first_line, line_start: 0 }
    }

    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column of the cursor, in characters.
    pub fn column(&self) -> usize {
        self.text[self.line_start..self.pos].chars().count() + 1
    }

    /// Skip whitespace, commas, comments and `#_` discards; `true` if a form follows.
    pub fn at_form(&mut self) -> Result<bool, EdnError> {
        self.skip_blank()?;
        Ok(self.peek().is_some())
    }

    /// Whether the next character (after blanks) is `c`.
    pub fn peek_is(&mut self, c: char) -> bool {
        self.skip_blank().is_ok() && self.peek() == Some(c)
    }

    /// Consume one character (used by callers walking a top-level vector).
    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.line_start = self.pos;
        }
        Some(c)
    }

    /// Skip to the start of the next line (error recovery).
    pub fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    /// The next form, or `None` at the end of the text.
    pub fn read(&mut self) -> Result<Option<Edn>, EdnError> {
        if !self.at_form()? {
            return Ok(None);
        }
        self.form(0).map(Some)
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut chars = self.text[self.pos..].chars();
        chars.next();
        chars.next()
    }

    fn error(&self, message: impl Into<String>) -> EdnError {
        EdnError { line: self.line, column: self.column(), message: message.into() }
    }

    fn skip_blank(&mut self) -> Result<(), EdnError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() || c == ',' => {
                    self.bump();
                }
                Some(';') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('#') if self.peek2() == Some('_') => {
                    self.bump();
                    self.bump();
                    self.skip_blank()?;
                    if self.peek().is_none() {
                        return Err(self.error("`#_` discards nothing"));
                    }
                    self.form(0)?;
                }
                _ => return Ok(()),
            }
        }
    }

    fn form(&mut self, depth: usize) -> Result<Edn, EdnError> {
        if depth > DEPTH_MAX {
            return Err(self.error(format!("nested deeper than {DEPTH_MAX} levels")));
        }
        self.skip_blank()?;
        let Some(c) = self.peek() else { return Err(self.error("unexpected end of input")) };
        match c {
            '(' => {
                self.bump();
                Ok(Edn::List(self.items(')', depth)?))
            }
            '[' => {
                self.bump();
                Ok(Edn::Vector(self.items(']', depth)?))
            }
            '{' => {
                self.bump();
                let items = self.items('}', depth)?;
                if items.len() % 2 != 0 {
                    return Err(self.error("a map needs an even number of forms"));
                }
                let mut entries = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    entries.push((k, v));
                }
                Ok(Edn::Map(entries))
            }
            '#' => {
                self.bump();
                match self.peek() {
                    Some('{') => {
                        self.bump();
                        Ok(Edn::Set(self.items('}', depth)?))
                    }
                    Some(c) if c.is_alphabetic() => {
                        let tag = self.token();
                        let value = self.form(depth + 1)?;
                        Ok(Edn::Tagged(tag, Box::new(value)))
                    }
                    _ => Err(self.error("unsupported `#` dispatch")),
                }
            }
            ')' | ']' | '}' => Err(self.error(format!("unexpected `{c}`"))),
            '"' => self.string(),
            '\\' => {
                self.bump();
                let token = self.token();
                let mut chars = token.chars();
                match (chars.next(), chars.next(), token.as_str()) {
                    (_, _, "newline") => Ok(Edn::Char('\n')),
                    (_, _, "space") => Ok(Edn::Char(' ')),
                    (_, _, "tab") => Ok(Edn::Char('\t')),
                    (Some(c), None, _) => Ok(Edn::Char(c)),
                    _ => match self.bump() {
                        // A delimiter as a character: `\(`.
                        Some(c) if token.is_empty() => Ok(Edn::Char(c)),
                        _ => Err(self.error(format!("unknown character literal `\\{token}`"))),
                    },
                }
            }
            ':' => {
                self.bump();
                let name = self.token();
                if name.is_empty() {
                    return Err(self.error("empty keyword"));
                }
                Ok(Edn::Keyword(name))
            }
            _ => {
                let token = self.token();
                if token.is_empty() {
                    // A character that is neither a delimiter nor part of a token.
                    self.bump();
                    return Err(self.error(format!("unexpected character `{c}`")));
                }
                self.atom(&token)
            }
        }
    }

    fn items(&mut self, close: char, depth: usize) -> Result<Vec<Edn>, EdnError> {
        let start_line = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_blank()?;
            match self.peek() {
                None => {
                    return Err(self.error(format!("`{close}` missing (opened on line {start_line})")));
                }
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.push(self.form(depth + 1)?),
            }
        }
    }

    /// A run of token characters (symbols, numbers, keyword names).
    fn token(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ',' | '(' | ')' | '[' | ']' | '{' | '}' | '"' | ';') {
                break;
            }
            self.bump();
        }
        self.text[start..self.pos].to_string()
    }

    fn atom(&self, token: &str) -> Result<Edn, EdnError> {
        match token {
            "nil" => return Ok(Edn::Nil),
            "true" => return Ok(Edn::Bool(true)),
            "false" => return Ok(Edn::Bool(false)),
            _ => {}
        }
        let first = token.chars().next().unwrap_or(' ');
        let numeric = first.is_ascii_digit()
            || ((first == '-' || first == '+') && token[1..].starts_with(|c: char| c.is_ascii_digit()));
        if !numeric {
            return Ok(Edn::Symbol(token.to_string()));
        }
        let digits = token.strip_suffix('N').unwrap_or(token);
        if let Ok(i) = digits.parse::<i64>() {
            return Ok(Edn::Int(i));
        }
        let float = token.strip_suffix('M').unwrap_or(token);
        if float.contains(['.', 'e', 'E']) {
            if let Ok(x) = float.parse::<f64>() {
                return Ok(Edn::Float(x));
            }
        }
        Err(self.error(format!("`{token}` is not a number that fits in 64 bits")))
    }

    fn string(&mut self) -> Result<Edn, EdnError> {
        let start_line = self.line;
        self.bump(); // the opening quote
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(format!("string opened on line {start_line} never ends"))),
                Some('"') => return Ok(Edn::Str(out)),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('u') => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let digit = self.bump().and_then(|c| c.to_digit(16));
                            let Some(digit) = digit else {
                                return Err(self.error("`\\u` needs four hex digits"));
                            };
                            code = code * 16 + digit;
                        }
                        out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                    }
                    Some(c) => return Err(self.error(format!("unknown escape `\\{c}` in a string"))),
                    None => return Err(self.error("string ends in `\\`")),
                },
                Some(c) => out.push(c),
            }
        }
    }
}

/// How [`write_history`] writes an operation's key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyStyle {
    /// A `:key "k"` entry: what Concord's readers take, and what tools that ignore unknown map
    /// entries pass over (Knossos then sees one register – split the history by key first).
    #[default]
    Field,
    /// Jepsen's `independent` tuples, `:value [:k v]` (the key as a keyword): the shape
    /// `jepsen.independent/checker` and Knossos's multi-key tests read. Concord reads them back too.
    Independent,
}

/// Write a Concord history as Jepsen EDN: a vector of op maps, one per line, in the order of the
/// events (which is the real-time order), each with Jepsen's `:index` and `:time` (nanoseconds):
///
/// ```text
/// [{:index 0, :time 1000, :process 0, :type :invoke, :f :write, :key "x", :value 3}
///  {:index 1, :time 2000, :process 0, :type :ok, :f :write, :key "x", :value 3}]
/// ```
///
/// Concord's function names are Jepsen's (`:read`, `:write`, `:cas`, …); the compare-and-sets that
/// stand for a mutex's `:acquire` and `:release` (see [`crate::model::LOCKED`]) are written back as
/// those. Strings are EDN strings. What Concord's EDN reader reads back is the same history.
pub fn write_history(history: &concord_core::history::History, keys: KeyStyle) -> String {
    use concord_core::history::{EventType, OpFn, Value};
    use std::fmt::Write as _;
    fn value(out: &mut String, v: &Value) {
        match v {
            Value::Nil => out.push_str("nil"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            // Escape what EDN needs (quote, backslash) and the usual whitespace; write every other
            // character as it is – Rust's `{:?}` would write `\u{..}`, which EDN does not read.
            Value::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    value(out, item);
                }
                out.push(']');
            }
        }
    }
    let locked = Value::Str(crate::model::LOCKED.to_string());
    let mut out = String::from("[");
    for (index, event) in history.events.iter().enumerate() {
        if index > 0 {
            out.push_str("\n ");
        }
        let kind = match event.kind {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        };
        let op = &event.op;
        let mutex = match (op.f, op.value.as_pair()) {
            (OpFn::Cas, Some((Value::Nil, new))) if *new == locked => Some("acquire"),
            (OpFn::Cas, Some((expected, Value::Nil))) if *expected == locked => Some("release"),
            _ => None,
        };
        let _ = write!(
            out,
            "{{:index {index}, :time {}, :process {}, :type :{kind}, ",
            event.time.0, event.process
        );
        if let Some(f) = mutex {
            let _ = write!(out, ":f :{f}, :value nil}}");
            continue;
        }
        let _ = write!(out, ":f :{}, ", op.f);
        match (&op.key, keys) {
            (Some(key), KeyStyle::Field) => {
                out.push_str(":key ");
                value(&mut out, &Value::Str(key.clone()));
                out.push_str(", :value ");
                value(&mut out, &op.value);
            }
            (Some(key), KeyStyle::Independent) => {
                // A keyword must be a plain token; anything else stays a string (and is then read
                // back as a pair, not a key: say so rather than write a keyword EDN cannot read).
                let plain = !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '*' | '+' | '!' | '?'));
                out.push_str(":value [");
                if plain {
                    let _ = write!(out, ":{key}");
                } else {
                    value(&mut out, &Value::Str(key.clone()));
                }
                out.push(' ');
                value(&mut out, &op.value);
                out.push(']');
            }
            (None, _) => {
                out.push_str(":value ");
                value(&mut out, &op.value);
            }
        }
        out.push('}');
    }
    out.push_str("]\n");
    out
}

/// Read every form of `text`.
pub fn read_all(text: &str) -> Result<Vec<Edn>, EdnError> {
    let mut reader = Reader::new(text, 1);
    let mut forms = Vec::new();
    while let Some(form) = reader.read()? {
        forms.push(form);
    }
    Ok(forms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_jepsen_op_maps() {
        let forms =
            read_all(r#"{:process 0, :type :invoke, :f :cas, :value [1 4], :key "k"} ; note"#).unwrap();
        assert_eq!(forms.len(), 1);
        let m = &forms[0];
        assert_eq!(m.get("process"), Some(&Edn::Int(0)));
        assert_eq!(m.get("type"), Some(&Edn::Keyword("invoke".into())));
        assert_eq!(m.get("value"), Some(&Edn::Vector(vec![Edn::Int(1), Edn::Int(4)])));
        assert_eq!(m.get("key"), Some(&Edn::Str("k".into())));
    }

    #[test]
    fn reads_the_rest_of_the_notation() {
        let forms =
            read_all("#{1 2} (a b) #_ ignored \\x \"a\\\"b\" 12N -3 1.5 #inst \"2024\" true").unwrap();
        assert_eq!(forms.len(), 9);
        assert_eq!(forms[2], Edn::Char('x'));
        assert_eq!(forms[3], Edn::Str("a\"b".into()));
        assert_eq!(forms[4], Edn::Int(12));
        assert_eq!(forms[5], Edn::Int(-3));
    }

    #[test]
    fn errors_carry_lines_and_never_panic() {
        let e = read_all("{:a 1}\n{:b\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("opened on line 2"), "{}", e.message);
        let deep = "[".repeat(10_000);
        assert!(read_all(&deep).unwrap_err().message.contains("nested deeper"));
        assert!(read_all("99999999999999999999999").is_err());
        assert!(read_all("{:a}").is_err());
        assert!(read_all("\"\\u12").is_err());
        assert!(read_all("#").is_err());
        assert!(read_all("é ü").is_ok());
    }
}
