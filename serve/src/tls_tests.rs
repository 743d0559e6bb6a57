//! The listener with TLS: who the client is reaches the handler; a
//! plaintext client, a certificate from another CA and a stalled
//! handshake are refused, and the listener goes on serving.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use keel_pki::{Ca, Material, PeerIdentity, Role, TlsConnector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const LIMITS: Limits = Limits {
    max_connections: 8,
    reserved_connections: 2,
    header_read_timeout: Duration::from_millis(800),
    idle_timeout: Duration::from_secs(5),
    body_read_timeout: Duration::from_secs(5),
};

fn app() -> Router {
    Router::new().route(
        "/whoami",
        get(|req: http::Request<axum::body::Body>| async move {
            match req.extensions().get::<PeerIdentity>() {
                Some(id) => format!("{}:{}", id.role, id.name),
                None => "anonymous".to_string(),
            }
        }),
    )
}

fn material(ca: &Ca, role: Option<Role>, name: &str) -> Material {
    match role {
        Some(role) => {
            let issued = ca
                .issue(role, name, &["127.0.0.1".into()], Duration::from_secs(600))
                .unwrap();
            Material::from_pem(ca.cert_pem(), Some((&issued.cert_pem, &issued.key_pem))).unwrap()
        }
        None => Material::from_pem(ca.cert_pem(), None).unwrap(),
    }
}

async fn start(server: &Material) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tls = Some(server.server_config().unwrap());
    tokio::spawn(serve(
        listener,
        app(),
        LIMITS,
        Routes::default(),
        tls,
        std::future::pending(),
    ));
    addr
}

/// `GET /whoami` over TLS as `client`; the body, or the error.
async fn whoami(addr: SocketAddr, client: &Material) -> std::io::Result<String> {
    let config = client.client_config(&[b"http/1.1"]).unwrap();
    let connector = TlsConnector::new(config, Duration::from_secs(5));
    let mut tls = connector.connect("127.0.0.1", addr.port()).await?;
    tls.write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    tls.read_to_string(&mut out).await?;
    Ok(out.rsplit("\r\n\r\n").next().unwrap_or("").to_string())
}

#[tokio::test]
async fn the_client_certificate_names_who_calls() {
    let ca = Ca::create("cluster").unwrap();
    let addr = start(&material(&ca, Some(Role::Master), "m1")).await;
    assert_eq!(
        whoami(addr, &material(&ca, Some(Role::Agent), "agent-7"))
            .await
            .unwrap(),
        "agent:agent-7"
    );
    assert_eq!(
        whoami(addr, &material(&ca, Some(Role::Admin), "alice"))
            .await
            .unwrap(),
        "admin:alice"
    );
    assert_eq!(
        whoami(addr, &material(&ca, None, "")).await.unwrap(),
        "anonymous"
    );
}

#[tokio::test]
async fn strangers_and_plaintext_are_refused_and_the_port_keeps_serving() {
    let ca = Ca::create("cluster").unwrap();
    let other = Ca::create("another cluster").unwrap();
    let addr = start(&material(&ca, Some(Role::Master), "m1")).await;

    // A certificate from another CA: the server refuses the handshake.
    let stranger = material(&ca, None, "");
    let forged = {
        let issued = other
            .issue(Role::Master, "m9", &[], Duration::from_secs(600))
            .unwrap();
        Material::from_pem(ca.cert_pem(), Some((&issued.cert_pem, &issued.key_pem))).unwrap()
    };
    assert!(whoami(addr, &forged).await.is_err());
    // A client trusting another CA refuses the server.
    assert!(whoami(addr, &material(&other, None, "")).await.is_err());

    // Plaintext HTTP: told to use TLS, then closed.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    plain.read_to_string(&mut out).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 400") && out.contains("TLS"),
        "{out}"
    );

    // Garbage after a TLS record header, and a handshake that stalls.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(&[0x16, 3, 1, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 3, 1]).await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "a stalled handshake is closed after the head timeout"
    );

    assert_eq!(whoami(addr, &stranger).await.unwrap(), "anonymous");
}
