//! The remote store: turborepo's v8 artifact API (`HEAD`/`GET`/`PUT /v8/artifacts/{key}`), so a self-hosted
//! turborepo cache server shares results between checkouts, shards and CI machines. Configured from the
//! environment only (a token stays out of the repository). Every call is bounded by a timeout and answers with a
//! problem in words, never a panic: the driver warns and runs the task.

use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit, Mac};

/// How long connecting, sending a request's head, and waiting for the answer's head may each take: a server that
/// takes longer is taken for unavailable (with a warning).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a download's or an upload's body may take: longer is a problem with that artifact (a big one on a slow
/// link), not with the server.
const BODY_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest artifact downloaded (the same limit as the local store's default).
const DOWNLOAD_MAX: u64 = super::local::DEFAULT_MAX;

/// What irun does with the remote cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Look results up, never upload (pull requests from forks).
    Read,
    /// Look up, and upload every result stored.
    Write,
}

#[derive(Clone)]
pub(crate) struct Remote {
    /// The server's base URL, without a trailing `/`.
    pub(crate) url: String,
    token: Option<String>,
    team: Option<String>,
    pub(crate) mode: Mode,
    /// `IRUN_REMOTE_CACHE_SIGNATURE_KEY`: artifacts are signed when uploaded and must verify when downloaded.
    signature_key: Option<Vec<u8>>,
    /// The client, its connections kept open between requests (shared by every thread that asks).
    agent: ureq::Agent,
}

/// Why a request did not give an answer. `Unavailable` turns the remote cache off for the rest of the run (one
/// warning); `Unusable` concerns one artifact (the task runs, and its result is uploaded again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    Unavailable(String),
    Unusable(String),
}

/// The remote cache as the environment configures it: none without `IRUN_REMOTE_CACHE_URL` or with
/// `IRUN_REMOTE_CACHE=off`. A value irun cannot use is a warning (and the remote cache is off).
pub(crate) fn from_env() -> (Option<Remote>, Option<String>) {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    from_vars(&var)
}

fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> (Option<Remote>, Option<String>) {
    let mode = match var("IRUN_REMOTE_CACHE").as_deref().map(str::trim) {
        None | Some("write") => Mode::Write,
        Some("read") => Mode::Read,
        Some("off") => return (None, None),
        Some(other) => {
            let problem = format!("IRUN_REMOTE_CACHE=`{other}` is not read, write or off; the remote cache is off");
            return (None, Some(problem));
        }
    };
    let Some(url) = var("IRUN_REMOTE_CACHE_URL") else { return (None, None) };
    let url = url.trim().trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        let problem =
            format!("IRUN_REMOTE_CACHE_URL=`{url}` is not an http:// or https:// URL; the remote cache is off");
        return (None, Some(problem));
    }
    let remote = Remote {
        url,
        token: var("IRUN_REMOTE_CACHE_TOKEN"),
        team: var("IRUN_REMOTE_CACHE_TEAM"),
        mode,
        signature_key: var("IRUN_REMOTE_CACHE_SIGNATURE_KEY").map(String::into_bytes),
        agent: agent(),
    };
    (Some(remote), None)
}

impl Remote {
    /// The URL of `key`'s artifact, with the team as turborepo sends it (`teamId` for ids, `slug` for names).
    fn artifact_url(&self, key: &str) -> String {
        let team = match self.team.as_deref().map(|t| (t.starts_with("team_"), encoded(t))) {
            Some((true, team)) => format!("?teamId={team}"),
            Some((false, team)) => format!("?slug={team}"),
            None => String::new(),
        };
        format!("{}/v8/artifacts/{key}{team}", self.url)
    }

    /// For `irun cache status`: where, how, for which team, signed or not (never the token nor the key).
    pub(crate) fn describe(&self) -> String {
        let mode = match self.mode {
            Mode::Read => "read only",
            Mode::Write => "read and write",
        };
        let team = self.team.as_deref().map_or(String::new(), |t| format!(", team {t}"));
        let token = if self.token.is_some() { "" } else { ", no token" };
        let signed = if self.signature_key.is_some() { ", artifacts signed" } else { "" };
        format!("{} ({mode}{team}{token}{signed})", self.shown_url())
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// Whether the server holds `key` (`HEAD`): for `irun -n` and `irun explain`, which only look.
    pub(crate) fn exists(&self, key: &str) -> Result<bool, Problem> {
        let mut request = self.agent.head(self.artifact_url(key));
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        let response = request.call().map_err(|e| self.unreachable(&e))?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refused(&response)),
        }
    }

    /// `key`'s artifact (`GET`), its signature checked when a signature key is set; `None` on a miss.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Problem> {
        let mut request = self.agent.get(self.artifact_url(key));
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        let mut response = request.call().map_err(|e| self.unreachable(&e))?;
        match response.status().as_u16() {
            200..=299 => {}
            404 => return Ok(None),
            _ => return Err(self.refused(&response)),
        }
        let tag = response.headers().get("x-artifact-tag").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = response.body_mut().with_config().limit(DOWNLOAD_MAX).read_to_vec();
        let body = body.map_err(|e| Problem::Unusable(format!("its download broke off ({e})")))?;
        if let Some(secret) = &self.signature_key {
            match tag {
                None => return Err(Problem::Unusable("it is not signed".into())),
                Some(tag) if !verify(secret, key, self.team.as_deref(), &body, &tag) => {
                    return Err(Problem::Unusable("its signature does not verify".into()));
                }
                Some(_) => {}
            }
        }
        Ok(Some(body))
    }

    /// Upload `bytes` as `key`'s artifact (`PUT`), signed when a signature key is set.
    pub(crate) fn put(&self, key: &str, bytes: &[u8], duration_ms: u64) -> Result<(), Problem> {
        let mut request = self
            .agent
            .put(self.artifact_url(key))
            .header("Content-Type", "application/octet-stream")
            .header("x-artifact-duration", duration_ms.to_string());
        if let Some(auth) = self.auth() {
            request = request.header("Authorization", auth);
        }
        if let Some(secret) = &self.signature_key {
            request = request.header("x-artifact-tag", tag(secret, key, self.team.as_deref(), bytes));
        }
        let response = request.send(bytes).map_err(|e| match e {
            ureq::Error::Timeout(ureq::Timeout::SendBody) => {
                Problem::Unusable(format!("its upload ({} bytes) did not finish in time", bytes.len()))
            }
            e => self.unreachable(&e),
        })?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            413 => Err(Problem::Unusable(format!("the server refused it as too large ({} bytes)", bytes.len()))),
            _ => Err(self.refused(&response)),
        }
    }

    fn unreachable(&self, e: &ureq::Error) -> Problem {
        let what = match e {
            ureq::Error::Timeout(ureq::Timeout::RecvBody) => {
                return Problem::Unusable("its download did not finish in time".into());
            }
            ureq::Error::Timeout(_) => "did not answer in time".to_string(),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                "refused the connection (is the server running?)".to_string()
            }
            other => format!("cannot be reached ({other})"),
        };
        Problem::Unavailable(format!("the remote cache at {} {what}; tasks run without it", self.shown_url()))
    }

    fn refused(&self, response: &ureq::http::Response<ureq::Body>) -> Problem {
        let status = response.status().as_u16();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("elsewhere");
        let hint = match status {
            401 | 403 => ": check IRUN_REMOTE_CACHE_TOKEN and IRUN_REMOTE_CACHE_TEAM".to_string(),
            400 => ": check IRUN_REMOTE_CACHE_TEAM (the server may need a team)".to_string(),
            300..=399 => format!(" (a redirect to {location}): set IRUN_REMOTE_CACHE_URL to where it points"),
            _ => String::new(),
        };
        let url = self.shown_url();
        Problem::Unavailable(format!("the remote cache at {url} answered {status}{hint}; tasks run without it"))
    }

    /// The URL as irun shows it: without a user and password written into it.
    pub(crate) fn shown_url(&self) -> String {
        match self.url.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('@').filter(|(user, _)| !user.contains('/')) {
                Some((_, host)) => format!("{scheme}://{host}"),
                None => self.url.clone(),
            },
            None => self.url.clone(),
        }
    }
}

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_resolve(Some(ANSWER_TIMEOUT))
        .timeout_connect(Some(ANSWER_TIMEOUT))
        .timeout_send_request(Some(ANSWER_TIMEOUT))
        .timeout_recv_response(Some(ANSWER_TIMEOUT))
        .timeout_send_body(Some(BODY_TIMEOUT))
        .timeout_recv_body(Some(BODY_TIMEOUT))
        .http_status_as_error(false)
        // A redirect would drop the token, and turn an upload into a GET: it is said instead.
        .max_redirects(0)
        .user_agent(concat!("irun/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::new_with_config(config)
}

/// `text` percent-encoded for a query string (all but unreserved characters).
fn encoded(text: &str) -> String {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
    text.bytes().map(|b| if unreserved(b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// turborepo's artifact signature: base64 of HMAC-SHA256 under `secret` over the key, the team, then the body.
fn tag(secret: &[u8], key: &str, team: Option<&str>, body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, key, team, body).finalize().into_bytes())
}

fn verify(secret: &[u8], key: &str, team: Option<&str>, body: &[u8], tag: &str) -> bool {
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(tag.trim()) else { return false };
    mac(secret, key, team, body).verify_slice(&bytes).is_ok()
}

fn mac(secret: &[u8], key: &str, team: Option<&str>, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any size");
    mac.update(key.as_bytes());
    mac.update(team.unwrap_or("").as_bytes());
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> (Option<Remote>, Option<String>) {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_vars(&|name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    fn none(pairs: &[(&str, &str)]) -> Option<String> {
        let (remote, problem) = vars(pairs);
        assert!(remote.is_none());
        problem
    }

    #[test]
    fn no_url_or_off_is_no_remote_and_a_bad_value_says_so() {
        assert_eq!(none(&[]), None);
        assert_eq!(none(&[("IRUN_REMOTE_CACHE_URL", "http://h:1"), ("IRUN_REMOTE_CACHE", "off")]), None);
        let problem = none(&[("IRUN_REMOTE_CACHE_URL", "http://h:1"), ("IRUN_REMOTE_CACHE", "rw")]);
        assert!(problem.unwrap().contains("`rw` is not read, write or off"));
        assert!(none(&[("IRUN_REMOTE_CACHE_URL", "h:1")]).unwrap().contains("not an http:// or https:// URL"));
    }

    #[test]
    fn the_url_carries_the_team_as_turborepo_sends_it() {
        let (remote, _) = vars(&[
            ("IRUN_REMOTE_CACHE_URL", "http://h:1/"),
            ("IRUN_REMOTE_CACHE_TEAM", "web"),
            ("IRUN_REMOTE_CACHE", "read"),
        ]);
        let remote = remote.unwrap();
        assert_eq!(remote.mode, Mode::Read);
        assert_eq!(remote.artifact_url("abc"), "http://h:1/v8/artifacts/abc?slug=web");
        let (remote, _) = vars(&[("IRUN_REMOTE_CACHE_URL", "http://h:1"), ("IRUN_REMOTE_CACHE_TEAM", "team_x")]);
        let remote = remote.unwrap();
        assert_eq!(
            (remote.mode, remote.artifact_url("abc").as_str()),
            (Mode::Write, "http://h:1/v8/artifacts/abc?teamId=team_x")
        );
    }

    #[test]
    fn a_team_is_encoded_and_a_password_in_the_url_is_never_shown() {
        let (remote, _) = vars(&[("IRUN_REMOTE_CACHE_URL", "https://me:pw@h:1"), ("IRUN_REMOTE_CACHE_TEAM", "a b&c")]);
        let remote = remote.unwrap();
        assert_eq!(remote.artifact_url("k"), "https://me:pw@h:1/v8/artifacts/k?slug=a%20b%26c");
        assert_eq!(remote.shown_url(), "https://h:1");
        assert!(!remote.describe().contains("pw"));
    }

    #[test]
    fn a_signature_verifies_only_for_the_same_secret_key_team_and_body() {
        let t = tag(b"secret", "k", Some("web"), b"body");
        assert!(verify(b"secret", "k", Some("web"), b"body", &t));
        assert!(!verify(b"other", "k", Some("web"), b"body", &t));
        assert!(!verify(b"secret", "k2", Some("web"), b"body", &t));
        assert!(!verify(b"secret", "k", Some("api"), b"body", &t));
        assert!(!verify(b"secret", "k", Some("web"), b"bodY", &t));
        assert!(!verify(b"secret", "k", Some("web"), b"body", "not base64!"));
    }
}
