//! Opening a store from an application's own environment variables.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::{Error, Result, DEFAULT_URL};

/// What must be escaped in a file path to keep it one path of a URL.
const PATH_ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#').add(b' ');

/// The URL that `{prefix}TYPE`, `{prefix}URI`, `{prefix}PATH` and
/// `{prefix}POOL_SIZE`, as `var` reads them, describe. Empty values count
/// as unset.
///
/// - `URI` is a whole store URL, used as it is.
/// - `TYPE` is `memory`, `sqlite` or `postgres` (`postgresql`); with a
///   `URI` it must agree with the URI's scheme.
/// - `PATH` is the SQLite file (for `TYPE=sqlite`, instead of a `URI`).
/// - `POOL_SIZE` becomes the URL's `max_connections` (ignored by memory).
///
/// With none of them set, the embedded default ([`DEFAULT_URL`]).
pub(crate) fn url_from_vars(prefix: &str, var: impl Fn(&str) -> Option<String>) -> Result<String> {
    let get = |name: &str| {
        let full = format!("{prefix}{name}");
        let value = var(&full).filter(|v| !v.trim().is_empty());
        (full, value)
    };
    let (type_var, kind) = get("TYPE");
    let (uri_var, uri) = get("URI");
    let (path_var, path) = get("PATH");
    let (pool_var, pool) = get("POOL_SIZE");
    let pool = match pool {
        None => None,
        Some(p) => Some(
            p.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "{pool_var}={p:?}: expected a whole number of 1 or more"
                    ))
                })?,
        ),
    };
    if uri.is_some() && path.is_some() {
        return Err(Error::invalid(format!(
            "both {uri_var} and {path_var} are set: give the store as one or the other"
        )));
    }
    let kind = match kind.as_deref().map(str::trim) {
        None => None,
        Some("memory") => Some("memory"),
        Some("sqlite") => Some("sqlite"),
        Some("postgres" | "postgresql") => Some("postgres"),
        Some(other) => {
            return Err(Error::invalid(format!(
                "{type_var}={other:?}: expected memory, sqlite or postgres"
            )))
        }
    };
    let base = match (kind, uri, path) {
        (None, None, None) => match pool {
            None => return Ok(DEFAULT_URL.to_string()),
            Some(_) => DEFAULT_URL.to_string(),
        },
        (Some("memory"), None, None) => return Ok("memory://".to_string()),
        (Some("memory"), _, _) => {
            return Err(Error::invalid(format!(
                "{type_var}=memory takes no {uri_var} or {path_var}"
            )))
        }
        (kind, Some(uri), None) => {
            let scheme = match uri.split_once(':').map(|(s, _)| s) {
                Some("postgresql") => "postgres",
                Some(s) => s,
                None => "",
            };
            if let Some(kind) = kind {
                if scheme != kind {
                    return Err(Error::invalid(format!(
                        "{type_var}={kind} but {uri_var} is a {scheme:?} URL: they must agree"
                    )));
                }
            }
            if scheme == "memory" {
                return Ok(uri);
            }
            uri
        }
        (None | Some("sqlite"), None, Some(path)) => {
            format!("sqlite://{}", utf8_percent_encode(&path, PATH_ESCAPES))
        }
        (Some(_), None, Some(_)) => {
            return Err(Error::invalid(format!(
                "{path_var} names a SQLite file, but {type_var} is postgres: give {uri_var}"
            )))
        }
        (Some(kind), None, None) => {
            let what = if kind == "sqlite" {
                format!("{path_var} (the file) or {uri_var}")
            } else {
                uri_var
            };
            return Err(Error::invalid(format!("{type_var}={kind} needs {what}")));
        }
        (_, Some(_), Some(_)) => unreachable!("refused above"),
    };
    Ok(match pool {
        None => base,
        Some(n) => with_pool_size(&base, n, &pool_var)?,
    })
}

/// `url` with `max_connections=n`, unless it already says otherwise.
fn with_pool_size(url: &str, n: u32, pool_var: &str) -> Result<String> {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "max_connections" {
            if v.parse::<u32>().ok() == Some(n) {
                return Ok(url.to_string());
            }
            return Err(Error::invalid(format!(
                "{pool_var}={n} but the URL says max_connections={v}: they must agree"
            )));
        }
    }
    let sep = if query.is_empty() { "?" } else { "&" };
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Ok(format!("{head}{query}{sep}max_connections={n}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::collections::HashMap;

    fn url(vars: &[(&str, &str)]) -> Result<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (format!("FL_{k}"), v.to_string()))
            .collect();
        url_from_vars("FL_", |k| m.get(k).cloned())
    }

    fn refused(vars: &[(&str, &str)], says: &str) {
        let e = url(vars).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.message().contains(says), "{vars:?}: {e}");
    }

    #[test]
    fn maps_type_uri_path_and_pool_size() {
        assert_eq!(url(&[]).unwrap(), DEFAULT_URL);
        assert_eq!(url(&[("TYPE", "memory")]).unwrap(), "memory://");
        assert_eq!(
            url(&[("TYPE", "memory"), ("POOL_SIZE", "4")]).unwrap(),
            "memory://"
        );
        assert_eq!(
            url(&[("TYPE", "sqlite"), ("PATH", "data/fl.db")]).unwrap(),
            "sqlite://data/fl.db"
        );
        assert_eq!(
            url(&[("PATH", "/var/lib/my data/#1?.db"), ("POOL_SIZE", "4")]).unwrap(),
            "sqlite:///var/lib/my%20data/%231%3F.db?max_connections=4"
        );
        assert_eq!(
            url(&[
                ("TYPE", "postgres"),
                ("URI", "postgres://u:p@db:5432/fl?schema=fl"),
                ("POOL_SIZE", "20")
            ])
            .unwrap(),
            "postgres://u:p@db:5432/fl?schema=fl&max_connections=20"
        );
        assert_eq!(
            url(&[("TYPE", "postgresql"), ("URI", "postgresql://db/fl")]).unwrap(),
            "postgresql://db/fl"
        );
        assert_eq!(
            url(&[
                ("URI", "sqlite://x.db?max_connections=3"),
                ("POOL_SIZE", "3")
            ])
            .unwrap(),
            "sqlite://x.db?max_connections=3"
        );
        assert_eq!(url(&[("TYPE", " "), ("URI", "")]).unwrap(), DEFAULT_URL);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        refused(&[("TYPE", "mysql")], "FL_TYPE=\"mysql\"");
        refused(&[("TYPE", "sqlite")], "FL_PATH");
        refused(&[("TYPE", "postgres")], "FL_URI");
        refused(&[("TYPE", "postgres"), ("PATH", "x.db")], "FL_URI");
        refused(
            &[("TYPE", "sqlite"), ("URI", "postgres://db/x")],
            "must agree",
        );
        refused(
            &[("URI", "sqlite://a.db"), ("PATH", "b.db")],
            "one or the other",
        );
        refused(&[("TYPE", "memory"), ("PATH", "b.db")], "takes no");
        refused(&[("PATH", "b.db"), ("POOL_SIZE", "0")], "FL_POOL_SIZE");
        refused(&[("PATH", "b.db"), ("POOL_SIZE", "ten")], "FL_POOL_SIZE");
        refused(
            &[
                ("URI", "sqlite://a.db?max_connections=2"),
                ("POOL_SIZE", "3"),
            ],
            "must agree",
        );
    }
}
