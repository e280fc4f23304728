//! The CLI's HTTP client for the admin routes (`raftkv transfer-leader`, and the
//! membership commands to come): hyper's HTTP/1.1 client on a small current-thread
//! runtime, over TLS when given the CA (`--cacert`), sending the admin credential from
//! `RAFTKV_ADMIN_TOKEN` as a bearer token when it is set.

use std::time::Duration;

use axum::http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{Secret, ADMIN_TOKEN_ENV};
use crate::tls::client::{host_of, ClientTls};

/// Requests to admin endpoints, with one TLS setting and one credential.
#[derive(Clone)]
pub struct AdminClient {
    tls: Option<ClientTls>,
    token: Option<Secret>,
    /// For the whole request: connect, send, and the answer's last byte.
    pub timeout: Duration,
}

fn invalid(e: impl ToString) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}

impl AdminClient {
    pub fn new(tls: Option<ClientTls>, token: Option<Secret>) -> AdminClient {
        AdminClient {
            tls,
            token,
            timeout: Duration::from_secs(30),
        }
    }

    /// The credential from `RAFTKV_ADMIN_TOKEN`, if set and not empty.
    pub fn from_env(tls: Option<ClientTls>) -> AdminClient {
        let token = std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        AdminClient::new(tls, token)
    }

    /// One request to `addr` (`host:port`): (status code, body). `body` is sent as JSON.
    /// Blocking: call it outside an async runtime.
    pub fn request(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> std::io::Result<(u16, String)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            match tokio::time::timeout(self.timeout, self.send(addr, method, path, body)).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {:?}", self.timeout),
                )),
            }
        })
    }

    async fn send(
        &self,
        addr: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> std::io::Result<(u16, String)> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, addr);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", t.expose()));
        }
        let payload = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(v).map_err(invalid)?
            }
            None => Vec::new(),
        };
        let req = req
            .body(Full::new(bytes::Bytes::from(payload)))
            .map_err(invalid)?;
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => exchange(tcp, req).await,
            Some(tls) => {
                let host = host_of(addr);
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| invalid(format!("{host}: {e}")))?;
                let s = tokio_rustls::TlsConnector::from(tls.config())
                    .connect(name, tcp)
                    .await?;
                exchange(s, req).await
            }
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    req: Request<Full<bytes::Bytes>>,
) -> std::io::Result<(u16, String)> {
    let other = |e: hyper::Error| std::io::Error::other(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(other)?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(other)?;
    let code = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(other)?.to_bytes();
    driver.abort();
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}
