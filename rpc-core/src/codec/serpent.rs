//! Serpent, the default serializer of Pyro5: Python literal text, read into a [`PyValue`] and
//! written from one.
//!
//! A serpent document is a header line (`# serpent utf-8 python3.2`) and one Python literal:
//! `None`, `True`, `False`, ints, floats, strings with Python's escapes, tuples, lists, dicts
//! and sets. Bytes travel as the dict `{'data': <base64>, 'encoding': 'base64'}`; infinities
//! as `1e30000` and NaN as `{'__class__': 'float', 'value': 'nan'}`. The reader turns those
//! dicts back into bytes and floats. It refuses input that nests deeper than its limit and
//! anything that is not a literal, with the offset where it stopped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BufMut;

use super::py_value::PyValue;

/// The header line serpent writes, and the start every document must have.
pub(crate) const HEADER: &[u8] = b"# serpent utf-8 python3.2\n";

/// Why a serpent document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid serpent at byte {offset}: {reason}")]
pub(crate) struct SerpentError {
    pub(crate) offset: usize,
    pub(crate) reason: String,
}

/// Reads the document `text`, whose values may nest `max_depth` levels.
pub(crate) fn parse(text: &[u8], max_depth: usize) -> Result<PyValue, SerpentError> {
    let mut parser = Parser {
        text,
        at: 0,
        left: max_depth,
    };
    parser.header()?;
    let value = parser.value()?;
    parser.skip_space();
    if parser.at != text.len() {
        return Err(parser.error("text after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
    /// Levels of nesting still allowed.
    left: usize,
}

impl Parser<'_> {
    fn error(&self, reason: impl Into<String>) -> SerpentError {
        SerpentError {
            offset: self.at,
            reason: reason.into(),
        }
    }

    fn header(&mut self) -> Result<(), SerpentError> {
        if !self.text.starts_with(b"# serpent utf-8") {
            return Err(self.error("no `# serpent utf-8` header line"));
        }
        match self.text.iter().position(|&byte| byte == b'\n') {
            Some(end) => {
                self.at = end + 1;
                Ok(())
            }
            None => Err(self.error("the header line does not end")),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), SerpentError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{}`", byte as char)))
        }
    }

    fn keyword(&mut self, word: &[u8]) -> bool {
        let rest = &self.text[self.at..];
        let follows = rest.get(word.len()).copied();
        if rest.starts_with(word) && !follows.is_some_and(|byte| byte.is_ascii_alphanumeric()) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<PyValue, SerpentError> {
        self.skip_space();
        match self.peek() {
            None => Err(self.error("the document ends where a value should start")),
            Some(b'(') => self.nested(Self::tuple),
            Some(b'[') => self.nested(Self::list),
            Some(b'{') => self.nested(Self::dict_or_set),
            Some(b'\'' | b'"') => self.string().map(PyValue::Str),
            Some(b'b') if matches!(self.text.get(self.at + 1), Some(b'\'' | b'"')) => {
                self.at += 1;
                self.byte_string().map(PyValue::Bytes)
            }
            Some(b'-' | b'+' | b'.' | b'0'..=b'9') => self.number(),
            Some(_) if self.keyword(b"None") => Ok(PyValue::None),
            Some(_) if self.keyword(b"True") => Ok(PyValue::Bool(true)),
            Some(_) if self.keyword(b"False") => Ok(PyValue::Bool(false)),
            Some(_) => Err(self.error("not a Python literal")),
        }
    }

    fn nested(
        &mut self,
        read: fn(&mut Self) -> Result<PyValue, SerpentError>,
    ) -> Result<PyValue, SerpentError> {
        if self.left == 0 {
            return Err(self.error("values nest deeper than `Config::max_nesting_depth` allows"));
        }
        self.left -= 1;
        self.at += 1;
        let value = read(self);
        self.left += 1;
        value
    }

    /// Items up to `close`, separated by commas, with an optional trailing comma; whether a
    /// comma came at all (what tells `(x,)` from `(x)`).
    fn items(
        &mut self,
        close: u8,
        first: Option<PyValue>,
    ) -> Result<(Vec<PyValue>, bool), SerpentError> {
        let mut items: Vec<PyValue> = first.into_iter().collect();
        let mut comma = false;
        loop {
            if self.eat(close) {
                return Ok((items, comma));
            }
            if !items.is_empty() {
                self.expect(b',')?;
                comma = true;
                if self.eat(close) {
                    return Ok((items, comma));
                }
            }
            items.push(self.value()?);
        }
    }

    fn tuple(&mut self) -> Result<PyValue, SerpentError> {
        let (items, comma) = self.items(b')', None)?;
        match items.len() {
            // `(x)` is x in parentheses, not a tuple.
            1 if !comma => Ok(items.into_iter().next().unwrap_or(PyValue::None)),
            _ => Ok(PyValue::Tuple(items)),
        }
    }

    fn list(&mut self) -> Result<PyValue, SerpentError> {
        self.items(b']', None)
            .map(|(items, _)| PyValue::List(items))
    }

    fn dict_or_set(&mut self) -> Result<PyValue, SerpentError> {
        if self.eat(b'}') {
            return Ok(PyValue::Dict(Vec::new()));
        }
        let first = self.value()?;
        if !self.eat(b':') {
            let (items, _) = self.items(b'}', Some(first))?;
            return Ok(PyValue::Set(items));
        }
        let mut entries = vec![(first, self.value()?)];
        loop {
            if self.eat(b'}') {
                break;
            }
            self.expect(b',')?;
            if self.eat(b'}') {
                break;
            }
            let key = self.value()?;
            self.expect(b':')?;
            entries.push((key, self.value()?));
        }
        Ok(special(PyValue::Dict(entries)))
    }

    fn number(&mut self) -> Result<PyValue, SerpentError> {
        let start = self.at;
        let mut float = false;
        if let Some(b'-' | b'+') = self.peek() {
            self.at += 1;
        }
        while let Some(byte) = self.peek() {
            match byte {
                b'0'..=b'9' | b'_' => {}
                b'.' => float = true,
                b'e' | b'E' => {
                    float = true;
                    if let Some(b'-' | b'+') = self.text.get(self.at + 1) {
                        self.at += 1;
                    }
                }
                b'j' | b'J' => return Err(self.error("complex numbers are not supported")),
                _ => break,
            }
            self.at += 1;
        }
        let literal = std::str::from_utf8(&self.text[start..self.at])
            .map_err(|_| self.error("not a number"))?
            .replace('_', "");
        if float {
            return literal
                .parse::<f64>()
                .map(PyValue::Float)
                .map_err(|_| self.error(format!("`{literal}` is not a float")));
        }
        if let Ok(value) = literal.parse::<i128>() {
            return Ok(PyValue::Int(value));
        }
        literal
            .trim_start_matches('+')
            .parse::<u128>()
            .map(PyValue::BigUint)
            .map_err(|_| self.error(format!("`{literal}` is not an int that fits 128 bits")))
    }

    /// The bytes of a quoted literal, escapes still in, and its quote; `at` is past it after.
    fn quoted(&mut self) -> Result<(usize, usize), SerpentError> {
        let quote = self.text[self.at];
        self.at += 1;
        let start = self.at;
        loop {
            match self.peek() {
                None | Some(b'\n') => return Err(self.error("the string does not end")),
                Some(b'\\') => self.at += 2,
                Some(byte) if byte == quote => {
                    self.at += 1;
                    return Ok((start, self.at - 1));
                }
                Some(_) => self.at += 1,
            }
        }
    }

    fn string(&mut self) -> Result<String, SerpentError> {
        let (start, end) = self.quoted()?;
        let raw = &self.text[start..end];
        let raw = std::str::from_utf8(raw).map_err(|_| SerpentError {
            offset: start,
            reason: "a string that is not UTF-8".into(),
        })?;
        if !raw.contains('\\') {
            return Ok(raw.to_owned());
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let escaped = chars.next().ok_or_else(|| self.error("a lone backslash"))?;
            let code = match escaped {
                'x' => hex(&mut chars, 2),
                'u' => hex(&mut chars, 4),
                'U' => hex(&mut chars, 8),
                other => match simple_escape(other) {
                    Some(byte) => Some(u32::from(byte)),
                    None => {
                        // Python keeps an unknown escape as it is.
                        out.push('\\');
                        out.push(other);
                        continue;
                    }
                },
            };
            let c = code.and_then(char::from_u32).ok_or_else(|| SerpentError {
                offset: start,
                reason: "an escape that is not a Unicode scalar value".into(),
            })?;
            out.push(c);
        }
        Ok(out)
    }

    fn byte_string(&mut self) -> Result<Vec<u8>, SerpentError> {
        let (start, end) = self.quoted()?;
        let mut out = Vec::with_capacity(end - start);
        let mut bytes = self.text[start..end].iter().copied();
        while let Some(byte) = bytes.next() {
            if byte != b'\\' {
                out.push(byte);
                continue;
            }
            let escaped = bytes.next().ok_or_else(|| self.error("a lone backslash"))?;
            if escaped == b'x' {
                let digits: Vec<u8> = bytes.by_ref().take(2).collect();
                let value = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|digits| u8::from_str_radix(digits, 16).ok())
                    .ok_or_else(|| self.error("a bad `\\x` escape"))?;
                out.push(value);
            } else if let Some(value) = simple_escape(char::from(escaped)) {
                out.push(value);
            } else {
                out.extend_from_slice(&[b'\\', escaped]);
            }
        }
        Ok(out)
    }
}

fn simple_escape(c: char) -> Option<u8> {
    Some(match c {
        '\\' => b'\\',
        '\'' => b'\'',
        '"' => b'"',
        'n' => b'\n',
        'r' => b'\r',
        't' => b'\t',
        'a' => 0x07,
        'b' => 0x08,
        'f' => 0x0c,
        'v' => 0x0b,
        '0' => 0,
        _ => return None,
    })
}

fn hex(chars: &mut std::str::Chars<'_>, digits: usize) -> Option<u32> {
    let text: String = chars.by_ref().take(digits).collect();
    if text.len() != digits {
        return None;
    }
    u32::from_str_radix(&text, 16).ok()
}

/// The value a dict of serpent's own stands for: bytes for the base64 dict, a float for the
/// float class dict; any other dict as it is.
fn special(dict: PyValue) -> PyValue {
    let PyValue::Dict(entries) = &dict else {
        return dict;
    };
    if entries.len() == 2
        && dict.get("encoding").and_then(PyValue::as_str) == Some("base64")
        && let Some(data) = dict.get("data").and_then(PyValue::as_str)
        && let Ok(bytes) = BASE64.decode(data)
    {
        return PyValue::Bytes(bytes);
    }
    if dict.get("__class__").and_then(PyValue::as_str) == Some("float")
        && let Some(value) = dict.get("value").and_then(PyValue::as_str)
    {
        match value {
            "nan" => return PyValue::Float(f64::NAN),
            "inf" => return PyValue::Float(f64::INFINITY),
            "-inf" => return PyValue::Float(f64::NEG_INFINITY),
            _ => {}
        }
    }
    dict
}

/// Appends the serpent document of `value`, header line first.
pub(crate) fn write(value: &PyValue, out: &mut impl BufMut) {
    out.put_slice(HEADER);
    write_value(value, out);
}

fn write_value(value: &PyValue, out: &mut impl BufMut) {
    match value {
        PyValue::None => out.put_slice(b"None"),
        PyValue::Bool(true) => out.put_slice(b"True"),
        PyValue::Bool(false) => out.put_slice(b"False"),
        PyValue::Int(value) => out.put_slice(value.to_string().as_bytes()),
        PyValue::BigUint(value) => out.put_slice(value.to_string().as_bytes()),
        PyValue::Float(value) => write_float(*value, out),
        PyValue::Str(text) => write_str(text, out),
        PyValue::Bytes(bytes) => {
            out.put_slice(b"{'data':'");
            out.put_slice(BASE64.encode(bytes).as_bytes());
            out.put_slice(b"','encoding':'base64'}");
        }
        PyValue::Tuple(items) => {
            out.put_u8(b'(');
            write_items(items, out);
            if items.len() == 1 {
                out.put_u8(b',');
            }
            out.put_u8(b')');
        }
        PyValue::List(items) => {
            out.put_u8(b'[');
            write_items(items, out);
            out.put_u8(b']');
        }
        // Python has no literal for an empty set; serpent writes an empty tuple.
        PyValue::Set(items) if items.is_empty() => out.put_slice(b"()"),
        PyValue::Set(items) => {
            out.put_u8(b'{');
            write_items(items, out);
            out.put_u8(b'}');
        }
        PyValue::Dict(entries) => {
            out.put_u8(b'{');
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                write_key(key, out);
                out.put_u8(b':');
                write_value(value, out);
            }
            out.put_u8(b'}');
        }
    }
}

fn write_items(items: &[PyValue], out: &mut impl BufMut) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        write_value(item, out);
    }
}

/// A dict key, made hashable for Python: a list becomes a tuple, and a dict, set or bytes
/// key its own serpent text as a string.
fn write_key(key: &PyValue, out: &mut impl BufMut) {
    match key {
        PyValue::List(items) => write_value(&PyValue::Tuple(items.clone()), out),
        PyValue::Dict(_) | PyValue::Set(_) | PyValue::Bytes(_) => {
            let mut text = Vec::new();
            write_value(key, &mut text);
            write_str(&String::from_utf8_lossy(&text), out);
        }
        other => write_value(other, out),
    }
}

fn write_float(value: f64, out: &mut impl BufMut) {
    if value.is_nan() {
        out.put_slice(b"{'__class__':'float','value':'nan'}");
    } else if value.is_infinite() {
        out.put_slice(if value > 0.0 { b"1e30000" } else { b"-1e30000" });
    } else {
        // Rust's `Debug` always writes a `.` or an exponent, so Python reads a float back.
        out.put_slice(format!("{value:?}").as_bytes());
    }
}

/// A string as Python's `repr` escapes it, in single quotes.
fn write_str(text: &str, out: &mut impl BufMut) {
    out.put_u8(b'\'');
    for c in text.chars() {
        match c {
            '\\' => out.put_slice(b"\\\\"),
            '\'' => out.put_slice(b"\\'"),
            '\n' => out.put_slice(b"\\n"),
            '\r' => out.put_slice(b"\\r"),
            '\t' => out.put_slice(b"\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.put_slice(format!("\\x{:02x}", c as u32).as_bytes());
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.put_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.put_u8(b'\'');
}

impl PyValue {
    /// The serpent literal of this value, without the header line.
    pub fn to_serpent_text(&self) -> String {
        let mut out = Vec::new();
        write_value(self, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> PyValue {
        parse(format!("# serpent utf-8 python3.2\n{body}").as_bytes(), 64).unwrap()
    }

    fn written(value: &PyValue) -> String {
        let mut out = Vec::new();
        write(value, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reads_the_invoke_the_stock_client_sends() {
        // Pyro5's own client, calling greet('wörld', 1.5, None, True, [1, 2], b'\x00\x01', n=3).
        let value = read(
            "('greeter','greet',('w\u{f6}rld',1.5,None,True,[1,2],{'data': 'AAE=', 'encoding': 'base64'}),{'n':3})",
        );
        assert_eq!(
            value,
            PyValue::Tuple(vec![
                PyValue::str("greeter"),
                PyValue::str("greet"),
                PyValue::Tuple(vec![
                    PyValue::str("wörld"),
                    PyValue::Float(1.5),
                    PyValue::None,
                    PyValue::Bool(true),
                    PyValue::List(vec![PyValue::Int(1), PyValue::Int(2)]),
                    PyValue::Bytes(vec![0, 1]),
                ]),
                PyValue::dict([("n", PyValue::Int(3))]),
            ])
        );
    }

    #[test]
    fn reads_escapes_numbers_and_sets() {
        assert_eq!(
            read(r"'a\'b\\c\n\x41\u00e9\U0001F600'"),
            PyValue::str("a'b\\c\nAé😀")
        );
        assert_eq!(read(r#""it's""#), PyValue::str("it's"));
        assert_eq!(read("-12"), PyValue::Int(-12));
        assert_eq!(
            read("340282366920938463463374607431768211455"),
            PyValue::BigUint(u128::MAX)
        );
        assert_eq!(read("1e30000"), PyValue::Float(f64::INFINITY));
        assert_eq!(read("-1e30000"), PyValue::Float(f64::NEG_INFINITY));
        assert!(matches!(
            read("{'__class__':'float','value':'nan'}"),
            PyValue::Float(value) if value.is_nan()
        ));
        assert_eq!(
            read("{'tag1', 'tag2',}"),
            PyValue::Set(vec![PyValue::str("tag1"), PyValue::str("tag2")])
        );
        assert_eq!(read("('x',)"), PyValue::Tuple(vec![PyValue::str("x")]));
        assert_eq!(read("('x')"), PyValue::str("x"));
        assert_eq!(read("()"), PyValue::Tuple(vec![]));
        assert_eq!(read("{}"), PyValue::Dict(vec![]));
        assert_eq!(
            read(" [ 1 ,\n 2 , ] "),
            PyValue::List(vec![PyValue::Int(1), PyValue::Int(2)])
        );
        assert_eq!(read(r"b'\x00a'"), PyValue::Bytes(vec![0, b'a']));
    }

    #[test]
    fn refuses_what_is_not_a_literal_with_where() {
        for (body, reason) in [
            ("__import__('os')", "not a Python literal"),
            ("(1+2j)", "expected `,`"),
            ("1j", "complex"),
            ("'open", "does not end"),
            ("[1, 2", "expected `,`"),
            ("[1, ", "ends where a value"),
            ("1 2", "text after the value"),
            ("99999999999999999999999999999999999999999", "fits 128 bits"),
            (r"'\ud800'", "Unicode scalar"),
            ("{1: 2, 3}", "expected `:`"),
        ] {
            let error =
                parse(format!("# serpent utf-8 python3.2\n{body}").as_bytes(), 64).unwrap_err();
            assert!(error.reason.contains(reason), "{body}: {error}");
        }
        assert!(parse(b"None", 64).unwrap_err().reason.contains("header"));
    }

    #[test]
    fn refuses_values_nested_past_the_limit() {
        let deep = format!(
            "# serpent utf-8 python3.2\n{}{}",
            "[".repeat(65),
            "]".repeat(65)
        );
        assert!(
            parse(deep.as_bytes(), 64)
                .unwrap_err()
                .reason
                .contains("nest")
        );
        let fits = format!(
            "# serpent utf-8 python3.2\n{}{}",
            "[".repeat(64),
            "]".repeat(64)
        );
        assert!(parse(fits.as_bytes(), 64).is_ok());
    }

    #[test]
    fn writes_what_python_reads_back() {
        let value = PyValue::Tuple(vec![
            PyValue::str("it's\n\u{1}é"),
            PyValue::Float(1.0),
            PyValue::Float(1e300),
            PyValue::Float(f64::NEG_INFINITY),
            PyValue::Bytes(vec![0, 1]),
            PyValue::Tuple(vec![PyValue::Int(1)]),
            PyValue::Set(vec![]),
            PyValue::dict([("k", PyValue::None)]),
        ]);
        assert_eq!(
            written(&value),
            "# serpent utf-8 python3.2\n('it\\'s\\n\\x01é',1.0,1e300,-1e30000,\
             {'data':'AAE=','encoding':'base64'},(1,),(),{'k':None})"
        );
    }

    #[test]
    fn what_it_writes_it_reads_back() {
        let value = PyValue::Dict(vec![
            (PyValue::Int(7), PyValue::List(vec![PyValue::Bool(false)])),
            (PyValue::str("\\'\"\t"), PyValue::Float(-0.5)),
            (PyValue::str("big"), PyValue::Int(i128::MIN)),
            (
                PyValue::str("bytes"),
                PyValue::Bytes(b"\xff\x00 ok".to_vec()),
            ),
        ]);
        let text = written(&value);
        assert_eq!(parse(text.as_bytes(), 8).unwrap(), value);
    }
}
