//! The Redis server the shared cache's tests use: built from Debian
//! packages (`ci/images/redis/build`), started by testcontainers, with the
//! same skip and require rules as Postgres.

use std::io::{Read, Write};

use persistkit_conformance::harnesses::redis_server;
use persistkit_conformance::SetupError;

/// One RESP command over a plain TCP connection, and the first reply line.
fn command(addr: &str, parts: &[&str]) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("redis answers");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut req = format!("*{}\r\n", parts.len());
    for p in parts {
        req.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
}

#[tokio::test]
async fn a_redis_server_answers_and_keeps_what_it_is_given() {
    let (url, _container) = match redis_server().await {
        Ok(server) => server,
        Err(SetupError::Skip(why)) => {
            eprintln!("SKIPPED redis: {why}");
            return;
        }
        Err(e) => panic!("no Redis server: {e:?}"),
    };
    let addr = url.trim_start_matches("redis://").to_string();
    assert_eq!(command(&addr, &["PING"]), "+PONG");
    assert_eq!(command(&addr, &["SET", "persistkit:probe", "v1"]), "+OK");
    assert_eq!(command(&addr, &["GET", "persistkit:probe"]), "$2\r\nv1");
    assert_eq!(command(&addr, &["INCR", "persistkit:version"]), ":1");
}
