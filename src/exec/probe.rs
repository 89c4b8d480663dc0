//! Readiness probes: when may a service's dependents start?

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use super::guard::StopPlan;
use super::table::Table;
use super::{spawn, supervisor};
use crate::config::{Check, HttpUrl, Probe, host_port};

/// A TCP connection attempt never waits longer than this (a dropped SYN must not use up the whole probe timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct Context<'a> {
    /// The run's processes (an `exec` probe starts one).
    pub(crate) table: &'a Arc<Table>,
    pub(crate) cwd: &'a Path,
    pub(crate) env: &'a [(String, String)],
    /// Flipped to true by the output reader when a line matches a `log` probe.
    pub(crate) log_matched: Option<watch::Receiver<bool>>,
}

/// Wait until the probe passes (true), or until its timeout (false).
pub(crate) async fn wait_ready(probe: &Probe, ctx: &mut Context<'_>) -> bool {
    let deadline = super::escapees::deadline_after(probe.timeout);
    if let (Check::Log(_), Some(rx)) = (&probe.check, ctx.log_matched.as_mut()) {
        return match tokio::time::timeout_at(deadline, async { rx.wait_for(|m| *m).await.map(|_| ()) }).await {
            Ok(Ok(_)) => true,
            // Both output streams closed without a match: no line can match any more.
            Ok(Err(_)) => {
                tokio::time::sleep_until(deadline).await;
                false
            }
            Err(_) => false,
        };
    }
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return false;
        }
        if attempt(&probe.check, ctx, remaining).await {
            return true;
        }
        sleep(probe.interval.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// Whether the probe passes at once (one attempt), for a service that may already be running.
pub(crate) async fn passes_now(probe: &Probe, ctx: &Context<'_>) -> bool {
    !matches!(probe.check, Check::Log(_) | Check::AutoTcp | Check::Later { .. })
        && attempt(&probe.check, ctx, probe.timeout.min(CONNECT_TIMEOUT)).await
}

async fn attempt(check: &Check, ctx: &Context<'_>, limit: Duration) -> bool {
    match check {
        Check::Tcp { host, port } => accepts(host.as_deref(), *port, limit.min(CONNECT_TIMEOUT)).await,
        Check::Http { url, status } => match timeout(limit, http_status(url)).await {
            Ok(Ok(code)) => match status {
                Some(want) => code == *want,
                None => (200..400).contains(&code),
            },
            _ => false,
        },
        Check::Exec(cmd) => {
            let spec = supervisor::Spec {
                cmd,
                cwd: ctx.cwd,
                env: ctx.env,
                output: spawn::Output::Discarded,
                stdin_inherited: false,
                stop: StopPlan::KILL,
                task: None,
                exec_later: false,
            };
            let Ok((mut process, _)) = supervisor::spawn(ctx.table, &spec) else { return false };
            let ok = matches!(timeout(limit, process.wait()).await, Ok(Ok(s)) if s.success());
            process.kill_and_wait().await;
            ok
        }
        // Resolved by the runner before it probes.
        Check::Log(_) | Check::AutoTcp | Check::Later { .. } => false,
    }
}

/// The status code of `GET url`, read from the status line.
async fn http_status(url: &HttpUrl) -> std::io::Result<u16> {
    let connect = timeout(CONNECT_TIMEOUT, TcpStream::connect((url.host.as_str(), url.port)));
    let mut stream = connect.await.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: irun\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        host_port(&url.host, url.port)
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    // "HTTP/1.1 200 OK"
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

/// The addresses `host` names (`None`: both loopback addresses); a name that does not resolve names none.
async fn addresses(host: Option<&str>, port: u16) -> Vec<SocketAddr> {
    match host {
        None => vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port)), SocketAddr::from((Ipv6Addr::LOCALHOST, port))],
        // A slow resolver must not hold a probe past its time (it is asked again at the next attempt).
        Some(h) => match timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((h, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            _ => Vec::new(),
        },
    }
}

/// Whether any address `host` names accepts a connection (each attempt waits at most `limit`).
async fn accepts(host: Option<&str>, port: u16, limit: Duration) -> bool {
    for addr in addresses(host, port).await {
        if matches!(timeout(limit, TcpStream::connect(addr)).await, Ok(Ok(_))) {
            return true;
        }
    }
    false
}

/// Whether something already accepts connections at the probe's address, on any address it names (it would fool
/// the probe).
pub(crate) async fn address_in_use(host: Option<&str>, port: u16) -> bool {
    accepts(host, port, Duration::from_millis(500)).await
}

/// Wait (up to `limit`) until nothing accepts connections at the address any more.
pub(crate) async fn wait_until_free(host: Option<&str>, port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && address_in_use(host, port).await {
        sleep(Duration::from_millis(10)).await;
    }
}
