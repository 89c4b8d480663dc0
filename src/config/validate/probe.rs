//! A service's `ready` table: exactly one probe (tcp, http, exec or log), its address or pattern, and how often
//! and how long it is tried.

use std::ops::Range;
use std::time::Duration;

use super::Validator;
use crate::config::env::{self, Layers};
use crate::config::model::{
    Check, DEFAULT_EXEC_INTERVAL, DEFAULT_HTTP_INTERVAL, DEFAULT_PROBE_TIMEOUT, DEFAULT_REMOTE_TCP_INTERVAL,
    DEFAULT_TCP_INTERVAL, HttpUrl, Pattern, Probe,
};
use crate::config::raw::{At, PROBE_KEYS, RawReady};
use crate::diagnostic::Diagnostic;

const ONE_PROBE: &str =
    "a service has exactly one probe: `tcp = PORT`, `http = \"URL\"`, `exec = \"command\"` or `log = \"regex\"`";

impl Validator<'_> {
    pub(super) fn probe(&self, ready: &At<Box<RawReady>>, vars: &Layers) -> Result<Probe, Diagnostic> {
        let raw: &RawReady = ready.get();
        // Named in a fixed order, whatever the order written.
        let written: Vec<&str> = raw.given().into_iter().map(|(k, _)| k).collect();
        let given: Vec<&str> = PROBE_KEYS.into_iter().filter(|k| written.contains(k)).collect();
        if given.is_empty() {
            return Err(self.err(ready.span(), "`ready` has no probe").with_help(ONE_PROBE));
        }
        if given.len() > 1 {
            return Err(self
                .err(ready.span(), format!("`ready` has more than one probe: {}", given.join(", ")))
                .with_help(ONE_PROBE));
        }
        if let (Some(status), None) = (&raw.status, &raw.http) {
            return Err(self
                .err(status.span(), "`status` only applies to an `http` probe")
                .with_help("remove `status`, or probe with `http = \"URL\"`"));
        }
        let (check, default_interval) = self.check(raw, vars)?;
        let interval = match &raw.interval {
            Some(i) => self.duration(i, "ready.interval")?,
            None => default_interval,
        };
        let timeout = match &raw.timeout {
            Some(t) => self.duration(t, "ready.timeout")?,
            None => DEFAULT_PROBE_TIMEOUT,
        };
        Ok(Probe { check, interval, timeout })
    }

    /// The one probe given, and how often it is tried unless `interval` says otherwise.
    fn check(&self, raw: &RawReady, vars: &Layers) -> Result<(Check, Duration), Diagnostic> {
        // Read again as the service starts, for the ports chosen then: `$${IRUN_...}` stays escaped till then.
        let text = |v: &At<String>, key: &str| -> Result<At<String>, Diagnostic> {
            Ok(At::new(v.span(), self.expand_by(env::expand_before_start, v.get(), v.span(), key, vars)?.into_owned()))
        };
        if let Some(tcp) = &raw.tcp {
            let value = self.expand_value(tcp, "ready.tcp", vars)?;
            if let toml::Value::String(s) = value.get() {
                let parse = |v: &At<String>| self.tcp(&At::new(v.span(), toml::Value::String(v.get().clone())));
                if let Some(later) = self.later(&At::new(value.span(), s.clone()), "tcp", None, parse)? {
                    return Ok((later, DEFAULT_TCP_INTERVAL));
                }
            }
            let check = self.tcp(&value)?;
            // Refused connections on this machine cost microseconds; a named or remote host is asked less often.
            let local = matches!(&check, Check::Tcp { host: None, .. } | Check::AutoTcp)
                || matches!(&check, Check::Tcp { host: Some(h), .. } if is_loopback(h));
            return Ok((check, if local { DEFAULT_TCP_INTERVAL } else { DEFAULT_REMOTE_TCP_INTERVAL }));
        }
        if let Some(http) = &raw.http {
            let status = match &raw.status {
                None => None,
                Some(s) if (100..=599).contains(s.get()) => Some(*s.get() as u16),
                Some(s) => {
                    return Err(self
                        .err(s.span(), format!("invalid HTTP status {}", s.get()))
                        .with_help("an HTTP status is a number from 100 to 599"));
                }
            };
            let http = text(http, "ready.http")?;
            if let Some(later) = self.later(&http, "http", status, |v| self.http_url(v).map(|_| Check::AutoTcp))? {
                return Ok((later, DEFAULT_HTTP_INTERVAL));
            }
            let url = self.http_url(&http)?;
            return Ok((Check::Http { url, status }, DEFAULT_HTTP_INTERVAL));
        }
        if let Some(exec) = &raw.exec {
            return Ok((Check::Exec(self.cmd(exec, "ready.exec", vars)?), DEFAULT_EXEC_INTERVAL));
        }
        let log = text(raw.log.as_ref().expect("one probe kind is set"), "ready.log")?;
        if let Some(interval) = &raw.interval {
            return Err(self
                .err(interval.span(), "`interval` has no effect on a `log` probe: every line is checked as it arrives")
                .with_help("remove `interval`"));
        }
        if let Some(later) = self.later(&log, "log", None, |v| self.log_pattern(v))? {
            return Ok((later, Duration::ZERO));
        }
        Ok((self.log_pattern(&log)?, Duration::ZERO))
    }

    fn log_pattern(&self, log: &At<String>) -> Result<Check, Diagnostic> {
        let re = regex::Regex::new(log.get())
            .map_err(|e| self.err(log.span(), format!("invalid regular expression in `ready.log`: {e}")))?;
        Ok(Check::Log(Pattern(re)))
    }

    /// A probe's text that names a port chosen as a service starts: checked now with a stand-in port, kept to be
    /// read once the port is known (see [`resolve`]). `None` when it names none.
    fn later(
        &self,
        text: &At<String>,
        key: &'static str,
        status: Option<u16>,
        parse: impl Fn(&At<String>) -> Result<Check, Diagnostic>,
    ) -> Result<Option<Check>, Diagnostic> {
        let refs = env::port_refs(text.get());
        if refs.is_empty() {
            return Ok(None);
        }
        // irun reads the text, not a shell: only `${...}` is a reference there.
        if let Some((_, name)) = refs.iter().find(|(at, _)| !text.get()[..*at].ends_with("${")) {
            let written = self.source.text.get(text.span()).unwrap_or_default();
            let span = written
                .find(&format!("${name}"))
                .map_or(text.span(), |i| text.span().start + i..text.span().start + i + name.len() + 1);
            return Err(self
                .err(span, format!("`${name}` in `ready.{key}` is not read as a port"))
                .with_help(format!("write `${{{name}}}`, with braces")));
        }
        let stand_in: Vec<(String, String)> = refs.iter().map(|(_, n)| (n.to_string(), "65535".to_string())).collect();
        parse(&At::new(text.span(), env::expand_irun(text.get(), &stand_in)))?;
        Ok(Some(Check::Later { key, text: text.get().clone(), status }))
    }

    fn port(&self, n: i64, span: Range<usize>) -> Result<u16, Diagnostic> {
        u16::try_from(n)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| self.err(span, format!("invalid port {n}")).with_help("a port is a number from 1 to 65535"))
    }

    fn tcp(&self, value: &At<toml::Value>) -> Result<Check, Diagnostic> {
        let span = value.span();
        match value.get() {
            toml::Value::Integer(n) => Ok(Check::Tcp { host: None, port: self.port(*n, span)? }),
            toml::Value::String(s) if s == "auto" => Ok(Check::AutoTcp),
            // A port written as a string, as `${PORT}` expands.
            toml::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                let port = s.parse().unwrap_or(i64::MAX);
                Ok(Check::Tcp { host: None, port: self.port(port, span)? })
            }
            toml::Value::String(s) => {
                let (host, port) = s.rsplit_once(':').ok_or_else(|| {
                    self.err(span.clone(), format!("invalid address {s:?} for `ready.tcp`"))
                        .with_help("write `tcp = 8001` or `tcp = \"HOST:PORT\"`")
                })?;
                let port: i64 = port.parse().map_err(|_| {
                    self.err(span.clone(), format!("invalid port {port:?} in `ready.tcp`"))
                        .with_help("a port is a number from 1 to 65535")
                })?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(self
                        .err(span, format!("address {s:?} for `ready.tcp` has no host"))
                        .with_help("write `tcp = 8001` for 127.0.0.1 or ::1, or `tcp = \"HOST:PORT\"`"));
                }
                Ok(Check::Tcp { host: Some(host.to_string()), port: self.port(port, span)? })
            }
            other => Err(self
                .err(span, format!("`ready.tcp` must be a port number or \"HOST:PORT\", not a {}", other.type_str()))
                .with_help("write `tcp = 8001` or `tcp = \"HOST:PORT\"`")),
        }
    }

    fn http_url(&self, value: &At<String>) -> Result<HttpUrl, Diagnostic> {
        let raw = value.get();
        let bad = |why: &str| {
            self.err(value.span(), format!("invalid URL {raw:?} for `ready.http`: {why}"))
                .with_help("write a plain-http URL such as \"http://127.0.0.1:8001/health\"")
        };
        let Some(rest) = raw.strip_prefix("http://") else {
            return Err(bad("only http:// URLs can be probed"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[` in the host"))?;
            let port = after.strip_prefix(':').unwrap_or("80");
            (host, if after.is_empty() { "80" } else { port })
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (authority, "80"),
            }
        };
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        let port: i64 = port.parse().map_err(|_| bad("the port is not a number"))?;
        Ok(HttpUrl {
            raw: raw.clone(),
            host: host.to_string(),
            port: self.port(port, value.span())?,
            path: path.to_string(),
        })
    }
}

/// A probe that names a port chosen as a service starts ([`Check::Later`]), read now that `env` holds the ports;
/// any other probe as it is. (Its text was checked at load with a stand-in port, so this does not fail unless a
/// port is missing.)
pub(crate) fn resolve(check: &Check, env: &[(String, String)]) -> Result<Check, String> {
    let Check::Later { key, text, status } = check else { return Ok(check.clone()) };
    let expanded = env::expand_irun(text, env);
    let source = crate::diagnostic::Source::new(std::path::Path::new("Irun.toml"), &expanded);
    let shell = crate::config::env::Shell::default();
    let root = std::path::Path::new("/");
    let v = Validator { source: &source, root, shell: &shell, secrets: Default::default(), files: Default::default() };
    let at = At::new(0..expanded.len(), expanded.clone());
    let check = match *key {
        "tcp" => v.tcp(&At::new(at.span(), toml::Value::String(expanded.clone()))),
        "http" => v.http_url(&at).map(|url| Check::Http { url, status: *status }),
        _ => v.log_pattern(&at),
    };
    check.map_err(|d| format!("`ready.{key}` = {expanded:?}: {}", d.message))
}

/// `localhost`, or an address of this machine's loopback interface.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
