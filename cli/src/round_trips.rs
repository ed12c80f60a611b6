//! Round trips per call, counted on the wire: a TCP proxy between the store
//! and Postgres counts each time the client speaks again after the server
//! has answered — one exchange, however many protocol messages the client
//! pipelines into it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use persistkit::postgres::{PgConfig, PgStore};
use persistkit::{Expect, Handle, MetricFilter, MetricPoint, NewEvent, Timestamp};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Forward `client` to `server`, counting the client's turns: a message
/// sent after the server has spoken starts a new round trip.
async fn forward(
    mut client: tokio::net::tcp::OwnedReadHalf,
    mut server: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
    pings: Arc<AtomicU64>,
    server_spoke: Arc<AtomicBool>,
) -> std::io::Result<()> {
    // Untyped start-up messages first: an SSL or GSS request (answered by
    // one byte, then another start-up message), then the start-up message.
    loop {
        let len = client.read_i32().await?;
        let mut body = vec![0u8; usize::try_from(len - 4).unwrap_or(0)];
        client.read_exact(&mut body).await?;
        server.write_i32(len).await?;
        server.write_all(&body).await?;
        let code = body
            .get(..4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        if !matches!(code, Some(80_877_103 | 80_877_104)) {
            break;
        }
    }
    loop {
        let kind = client.read_u8().await?;
        let len = client.read_i32().await?;
        let mut body = vec![0u8; usize::try_from(len - 4).unwrap_or(0)];
        client.read_exact(&mut body).await?;
        if server_spoke.swap(false, Ordering::SeqCst) {
            // A turn that starts with a lone Sync is the pool's ping.
            let which = if kind == b'S' { &pings } else { &count };
            which.fetch_add(1, Ordering::SeqCst);
        }
        server.write_u8(kind).await?;
        server.write_i32(len).await?;
        server.write_all(&body).await?;
    }
}

/// A counting proxy to `upstream`; returns its port, the count of the
/// calls' round trips and the count of the pool's pings.
async fn proxy(upstream: String) -> Result<(u16, Arc<AtomicU64>, Arc<AtomicU64>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(err)?;
    let port = listener.local_addr().map_err(err)?.port();
    let count = Arc::new(AtomicU64::new(0));
    let pings = Arc::new(AtomicU64::new(0));
    let (counter, pinged) = (count.clone(), pings.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (client_r, mut client_w) = client.into_split();
            let (mut server_r, server_w) = server.into_split();
            let spoke = Arc::new(AtomicBool::new(false));
            tokio::spawn(forward(
                client_r,
                server_w,
                counter.clone(),
                pinged.clone(),
                spoke.clone(),
            ));
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = server_r.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<_, std::io::Error>(());
                    }
                    spoke.store(true, Ordering::SeqCst);
                    client_w.write_all(&buf[..n]).await?;
                }
            });
        }
    });
    Ok((port, count, pings))
}

/// Round trips per call of each simple operation, on a store that
/// `config` opens, through the proxy. One connection, statements warmed
/// up first, as in steady state.
pub async fn measure(config: &PgConfig) -> Result<String, String> {
    let (scheme, rest) = config.url.split_once("://").ok_or("no scheme in the URL")?;
    let (creds, after) = rest.rsplit_once('@').ok_or("no host in the URL")?;
    let (hostport, path) = after.split_once('/').ok_or("no database in the URL")?;
    let (port, count, pings) = proxy(hostport.to_string()).await?;
    let url = format!("{scheme}://{creds}@127.0.0.1:{port}/{path}");
    let store = PgStore::connect(config.clone().url(url).max_connections(1).migrate(false))
        .await
        .map_err(err)?;
    let h = Handle::new(Arc::new(store)).with_timeout(Some(Duration::from_secs(10)));
    let at = |i: i64| Timestamp::from_secs(1_700_000_000 + i).expect("in range");
    const N: u64 = 50;
    let mut rows = Vec::new();
    macro_rules! per_call {
        ($name:expr, $target:expr, |$i:ident| $call:expr) => {{
            // Warm up: prepare the statements this call uses.
            for $i in 0..3i64 {
                $call.await.map_err(err)?;
            }
            let before = (count.load(Ordering::SeqCst), pings.load(Ordering::SeqCst));
            for $i in 3..3 + N as i64 {
                $call.await.map_err(err)?;
            }
            // Let the last release ping land.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let trips = (count.load(Ordering::SeqCst) - before.0) as f64 / N as f64;
            let pinged = (pings.load(Ordering::SeqCst) - before.1) as f64 / N as f64;
            rows.push(($name, trips, pinged, $target));
        }};
    }
    per_call!("get", "1", |i| h.get("jobs", &format!("j{}", i % 3)));
    per_call!("put (Any)", "1", |i| h.put(
        "jobs",
        &format!("j{i}"),
        &json!({"i": i}),
        Expect::Any
    ));
    h.put("jobs", "v", &json!({}), Expect::Absent)
        .await
        .map_err(err)?;
    // Call i moves record v from version i + 1 to i + 2.
    per_call!("put (Version)", "1", |i| h.put(
        "jobs",
        "v",
        &json!({"i": i}),
        Expect::Version(i as u64 + 1)
    ));
    per_call!("claim", "1", |i| h.claim(
        "payments",
        &format!("k{i}"),
        Duration::from_secs(60)
    ));
    per_call!("append (1 event)", "≤ 2", |i| h.append(&[NewEvent::new(
        "paid",
        at(i),
        json!({"i": i})
    )]));
    per_call!("write_metrics (10 points)", "1", |i| h.write_metrics(
        &(0..10)
            .map(|k| MetricPoint::gauge(at(i * 10 + k), "api", "lat", k as f64))
            .collect::<Vec<_>>()
    ));
    per_call!("read_metrics (1 h of one series)", "1", |i| h.read_metrics(
        &MetricFilter {
            component: Some("api".into()),
            name: Some("lat".into()),
            from: Some(at(i)),
            to: Some(at(i + 3_600)),
            ..Default::default()
        }
    ));
    let mut s = String::from(
        "round trips per call, counted by a proxy on the wire (client turns after a server answer), 50 calls each:\n",
    );
    s += &format!(
        "  {:<36} {:>6} {:>8} {:>8}\n",
        "call", "call", "target", "pool ping"
    );
    for (name, trips, pinged, target) in rows {
        s += &format!("  {name:<36} {trips:>6.2} {target:>8} {pinged:>8.2}\n");
    }
    s += "  pool ping: the driver's pool pings each connection it takes back, after the call has returned";
    Ok(s.trim_end().to_string())
}
