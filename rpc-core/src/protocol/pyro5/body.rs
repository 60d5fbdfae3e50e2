//! The documents inside Pyro5 frames: the handshake, the call, and the answers to them.

use bytes::BytesMut;

use crate::codec::{Format, PyValue};
use crate::dispatch::MethodInfo;

/// What Pyro5 clients send as the handshake's own value, and get back.
const HELLO: &str = "hello";

/// The object a CONNECT names.
///
/// # Errors
///
/// A message for the client if the body is not a handshake document.
pub fn parse_connect(format: Format, data: &[u8], max_depth: usize) -> Result<String, String> {
    let value = format
        .decode_py_value(data, max_depth)
        .map_err(|error| error.to_string())?;
    value
        .get("object")
        .and_then(PyValue::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the handshake names no object".to_owned())
}

/// One call, as an INVOKE carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The object id: a call names its object itself, whatever the handshake named.
    pub object: String,
    /// The method name.
    pub method: String,
    /// Positional arguments.
    pub vargs: Vec<PyValue>,
    /// Keyword arguments.
    pub kwargs: Vec<(String, PyValue)>,
}

/// The call an INVOKE body holds: serpent sends `(object, method, vargs, kwargs)`, JSON
/// `{"object", "method", "params", "kwargs"}`; kwargs may be `None`.
///
/// # Errors
///
/// A message for the client if the body is not such a document.
pub fn parse_invoke(format: Format, data: &[u8], max_depth: usize) -> Result<Invocation, String> {
    let value = format
        .decode_py_value(data, max_depth)
        .map_err(|error| error.to_string())?;
    let (object, method, vargs, kwargs) = match (&value, value.items()) {
        (PyValue::Dict(_), _) => (
            value.get("object"),
            value.get("method"),
            value.get("params"),
            value.get("kwargs"),
        ),
        (_, Some([object, method, vargs, kwargs])) => {
            (Some(object), Some(method), Some(vargs), Some(kwargs))
        }
        _ => return Err("the call is not (object, method, vargs, kwargs)".into()),
    };
    let text = |value: Option<&PyValue>, what: &str| {
        value
            .and_then(PyValue::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("the call's {what} is not a string"))
    };
    let vargs = match vargs {
        None | Some(PyValue::None) => Vec::new(),
        Some(value) => value
            .items()
            .ok_or("the call's positional arguments are not a sequence")?
            .to_vec(),
    };
    let kwargs = match kwargs {
        None | Some(PyValue::None) => Vec::new(),
        Some(PyValue::Dict(entries)) => entries
            .iter()
            .map(|(key, value)| match key {
                PyValue::Str(name) => Ok((name.clone(), value.clone())),
                _ => Err("a keyword argument's name is not a string".to_owned()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("the call's keyword arguments are not a dict".into()),
    };
    Ok(Invocation {
        object: text(object, "object")?,
        method: text(method, "method")?,
        vargs,
        kwargs,
    })
}

/// Arguments bound to a method's parameters, Python's way.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// One value per parameter, in order; `None` for those not given.
    pub args: PyValue,
    /// The parameters not given. An `Option` parameter takes `None` for them, as a Python
    /// parameter with a default of `None` would; any other fails to decode, and the error
    /// names them.
    pub missing: Vec<&'static str>,
}

impl Invocation {
    /// Binds the arguments to `params` by position, then by keyword.
    ///
    /// # Errors
    ///
    /// Python's `TypeError` message for too many positional arguments, an unknown keyword
    /// or a parameter given twice.
    pub fn bind(self, params: &[&'static str]) -> Result<Bound, String> {
        let method = &self.method;
        if self.vargs.len() > params.len() {
            return Err(format!(
                "{method}() takes {} positional arguments but {} were given",
                params.len(),
                self.vargs.len()
            ));
        }
        let mut slots: Vec<Option<PyValue>> = self.vargs.into_iter().map(Some).collect();
        slots.resize(params.len(), None);
        for (name, value) in self.kwargs {
            let Some(at) = params.iter().position(|param| *param == name) else {
                return Err(format!(
                    "{method}() got an unexpected keyword argument '{name}'"
                ));
            };
            if slots[at].replace(value).is_some() {
                return Err(format!(
                    "{method}() got multiple values for argument '{name}'"
                ));
            }
        }
        let missing = params
            .iter()
            .zip(&slots)
            .filter(|(_, slot)| slot.is_none())
            .map(|(param, _)| *param)
            .collect();
        let args = slots
            .into_iter()
            .map(|slot| slot.unwrap_or(PyValue::None))
            .collect();
        Ok(Bound {
            args: PyValue::Tuple(args),
            missing,
        })
    }
}

/// The metadata of an object with `methods`, which a Pyro5 client checks every call against.
pub fn metadata(methods: &[MethodInfo]) -> PyValue {
    let names = |oneway_only: bool| {
        PyValue::List(
            methods
                .iter()
                .filter(|method| method.oneway || !oneway_only)
                .map(|method| PyValue::str(method.name))
                .collect(),
        )
    };
    PyValue::dict([
        ("methods", names(false)),
        ("oneway", names(true)),
        ("attrs", PyValue::List(Vec::new())),
    ])
}

/// The CONNECTOK body for an object with `methods`: the handshake's answer and the metadata.
pub fn connect_ok(format: Format, methods: &[MethodInfo], out: &mut BytesMut) {
    let body = PyValue::dict([
        ("handshake", PyValue::str(HELLO)),
        ("meta", metadata(methods)),
    ]);
    // A value of our own making always encodes.
    let _ = format.encode_into(&body, out);
}

/// The body of a CONNECTFAIL: the reason as a JSON string, which every client reads whatever
/// serializer it asked for (it decodes with the id the reply carries).
pub fn connect_fail(reason: &str, out: &mut BytesMut) {
    let _ = Format::Json.encode_into(reason, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERPENT_CALL: &[u8] =
        b"# serpent utf-8 python3.2\n('greeter','greet',('w\xc3\xb6rld',),{'n':3})";

    #[test]
    fn reads_calls_in_both_formats() {
        let serpent = parse_invoke(Format::Serpent, SERPENT_CALL, 16).unwrap();
        let json = parse_invoke(
            Format::Json,
            r#"{"object": "greeter", "method": "greet", "params": ["wörld"], "kwargs": {"n": 3}}"#
                .as_bytes(),
            16,
        )
        .unwrap();
        assert_eq!(serpent, json);
        assert_eq!(serpent.object, "greeter");
        assert_eq!(serpent.vargs, vec![PyValue::str("wörld")]);
        assert_eq!(serpent.kwargs, vec![("n".to_owned(), PyValue::Int(3))]);
        let null_kwargs = parse_invoke(
            Format::Json,
            br#"{"object": "o", "method": "m", "params": [], "kwargs": null}"#,
            16,
        )
        .unwrap();
        assert!(null_kwargs.kwargs.is_empty());
    }

    #[test]
    fn refuses_calls_of_another_shape() {
        for body in [
            &b"# serpent utf-8 python3.2\n('o','m',())"[..],
            b"# serpent utf-8 python3.2\n(1,'m',(),{})",
            b"# serpent utf-8 python3.2\n('o','m',5,{})",
            b"# serpent utf-8 python3.2\n('o','m',(),{1:2})",
            b"not serpent",
        ] {
            assert!(parse_invoke(Format::Serpent, body, 16).is_err(), "{body:?}");
        }
    }

    #[test]
    fn binds_arguments_as_python_does() {
        let call = |vargs: Vec<PyValue>, kwargs: Vec<(&str, PyValue)>| Invocation {
            object: "o".into(),
            method: "add".into(),
            vargs,
            kwargs: kwargs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        let bound = call(vec![PyValue::Int(1)], vec![("b", PyValue::Int(2))])
            .bind(&["a", "b"])
            .unwrap();
        assert_eq!(
            bound.args,
            PyValue::Tuple(vec![PyValue::Int(1), PyValue::Int(2)])
        );
        assert!(bound.missing.is_empty());
        let partial = call(vec![], vec![("b", PyValue::Int(2))])
            .bind(&["a", "b"])
            .unwrap();
        assert_eq!(partial.missing, vec!["a"]);
        for (vargs, kwargs, message) in [
            (
                vec![PyValue::Int(1); 3],
                vec![],
                "takes 2 positional arguments but 3 were given",
            ),
            (
                vec![],
                vec![("c", PyValue::None)],
                "unexpected keyword argument 'c'",
            ),
            (
                vec![PyValue::Int(1)],
                vec![("a", PyValue::None)],
                "multiple values for argument 'a'",
            ),
        ] {
            let error = call(vargs, kwargs).bind(&["a", "b"]).unwrap_err();
            assert!(error.contains(message), "{error}");
        }
    }

    #[test]
    fn the_handshake_answer_lists_methods_and_oneways() {
        let methods = [
            MethodInfo {
                name: "add",
                params: &["a", "b"],
                oneway: false,
            },
            MethodInfo {
                name: "log",
                params: &["line"],
                oneway: true,
            },
        ];
        let mut out = BytesMut::new();
        connect_ok(Format::Serpent, &methods, &mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "# serpent utf-8 python3.2\n{'handshake':'hello','meta':\
             {'methods':['add','log'],'oneway':['log'],'attrs':[]}}"
        );
        assert_eq!(
            parse_connect(
                Format::Serpent,
                b"# serpent utf-8 python3.2\n{'handshake':'hello','object':'greeter'}",
                8
            ),
            Ok("greeter".to_owned())
        );
    }
}
