//! `pdcctl vm console` and `pdcctl vm vnc`: a VM's serial console and its VNC
//! display through KubeVirt's subresources (`subresources.kubevirt.io/v1`, served by
//! KubeVirt's virt-api behind the API server), as virtctl reaches them: a GET of
//! `namespaces/{ns}/virtualmachineinstances/{name}/console` (or `/vnc`) upgraded to
//! a websocket with KubeVirt's `plain.kubevirt.io` protocol, whose binary messages
//! carry the bytes both ways.

use std::io::Write;
use std::process::ExitCode;

use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::Client;
use kube::client::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::CliError;

/// KubeVirt's subresource API.
pub const GROUP_VERSION: &str = "subresources.kubevirt.io/v1";
/// The websocket protocol virt-api speaks on console and VNC: raw bytes.
const PROTOCOL: &str = "plain.kubevirt.io";
/// The escape byte that ends a console session (Ctrl+], as in virtctl and telnet).
const ESCAPE: u8 = 0x1d;

/// Which of a VMI's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Console,
    Vnc,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Console => "console",
            Stream::Vnc => "vnc",
        }
    }
}

/// The websocket to a VMI's stream.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Check that the cluster serves KubeVirt's subresource API with `stream`, so that a
/// cluster without KubeVirt gets a message naming what is missing rather than a bare 404.
pub async fn check_served(client: &Client, stream: Stream) -> Result<(), CliError> {
    let resource = format!("virtualmachineinstances/{}", stream.as_str());
    let missing = |what: String| {
        CliError::Unavailable(format!(
            "{what}: `pdcctl vm {}` needs KubeVirt installed in the cluster (its virt-api serves {GROUP_VERSION}, with {resource})",
            stream.as_str()
        ))
    };
    let req = http::Request::get(format!("/apis/{GROUP_VERSION}")).body(Vec::new()).map_err(|e| CliError::Usage(e.to_string()))?;
    match client.request::<APIResourceList>(req).await {
        Ok(list) if list.resources.iter().any(|r| r.name == resource) => Ok(()),
        Ok(_) => Err(missing(format!("the cluster serves {GROUP_VERSION} without {resource}"))),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 503 => Err(missing(format!("the cluster does not serve the API {GROUP_VERSION} ({} from the API server)", s.code))),
        Err(e) => Err(e.into()),
    }
}

/// Open the websocket to `stream` of the VMI `ns/name`. A refusal (403 without the
/// department admin role, 404 for a VMI that is not running) is the API's own error.
pub async fn open(client: &Client, ns: &str, name: &str, stream: Stream) -> Result<Socket, CliError> {
    let key = generate_key();
    let path = format!("/apis/{GROUP_VERSION}/namespaces/{ns}/virtualmachineinstances/{name}/{}", stream.as_str());
    let req = http::Request::get(path)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_VERSION, "13")
        .header(http::header::SEC_WEBSOCKET_KEY, &key)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, PROTOCOL)
        .body(Body::from(Vec::new()))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let res = client.send(req).await?;
    if res.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let code = res.status().as_u16();
        let text = res.into_body().collect_bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let message = serde_json::from_str::<kube::core::Status>(&text).map(|s| s.message).unwrap_or(text);
        return Err(CliError::Unavailable(format!("the {} of {ns}/{name} refused the connection ({code}): {}", stream.as_str(), message.trim())));
    }
    let accept = derive_accept_key(key.as_bytes());
    if res.headers().get(http::header::SEC_WEBSOCKET_ACCEPT).is_none_or(|h| h.as_bytes() != accept.as_bytes()) {
        return Err(CliError::Unavailable(format!("the {} of {ns}/{name} answered the upgrade with a wrong Sec-WebSocket-Accept", stream.as_str())));
    }
    let upgraded = hyper::upgrade::on(res).await.map_err(|e| CliError::Unavailable(format!("upgrading to a websocket: {e}")))?;
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await)
}

/// Carry bytes between the websocket and a local end until either closes: `input`'s
/// chunks go out as binary messages, the messages that come in go to `output`.
pub async fn relay<S>(socket: WebSocketStream<S>, mut input: mpsc::Receiver<Vec<u8>>, output: mpsc::Sender<Vec<u8>>) -> Result<(), CliError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ws_error = |e: tokio_tungstenite::tungstenite::Error| CliError::Unavailable(format!("the connection to the VM broke: {e}"));
    let (mut to_vm, mut from_vm) = socket.split();
    loop {
        tokio::select! {
            chunk = input.recv() => match chunk {
                Some(bytes) => to_vm.send(Message::Binary(bytes.into())).await.map_err(ws_error)?,
                None => {
                    let _ = to_vm.send(Message::Close(None)).await;
                    return Ok(());
                }
            },
            msg = from_vm.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    if output.send(bytes.to_vec()).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if output.send(text.as_bytes().to_vec()).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ws_error(e)),
            },
        }
    }
}

/// The serial console on this terminal (raw mode while it lasts) until Ctrl+] or the
/// VM's side closes.
pub async fn console(socket: Socket, vm: &str) -> Result<ExitCode, CliError> {
    eprintln!("Connected to the serial console of {vm}. The escape sequence is ^]");
    let _raw = RawMode::enable();
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    // Standard input and output block: each has a thread of its own.
    std::thread::spawn(move || read_stdin(&in_tx));
    let writer = std::thread::spawn(move || {
        let mut out = std::io::stdout();
        while let Some(bytes) = out_rx.blocking_recv() {
            if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let result = relay(socket, in_rx, out_tx).await;
    let _ = writer.join();
    eprintln!("\r");
    result.map(|()| ExitCode::SUCCESS)
}

/// Standard input in chunks until it ends or holds the escape byte.
fn read_stdin(tx: &mpsc::Sender<Vec<u8>>) {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let mut stdin = std::io::stdin();
    while let Ok(n) = stdin.read(&mut buf) {
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else { return };
        let (before, escaped) = match chunk.iter().position(|b| *b == ESCAPE) {
            Some(i) => (chunk.get(..i).unwrap_or_default(), true),
            None => (chunk, false),
        };
        if (!before.is_empty() && tx.blocking_send(before.to_vec()).is_err()) || escaped {
            return;
        }
    }
}

/// The terminal in raw mode (keys go to the VM as typed, Ctrl+C included) until dropped;
/// nothing when standard input is no terminal.
struct RawMode(bool);

impl RawMode {
    fn enable() -> Self {
        use std::io::IsTerminal;
        RawMode(std::io::stdin().is_terminal() && crossterm::terminal::enable_raw_mode().is_ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// VNC on a local port: a viewer that connects there is carried to the VM's display
/// (one viewer, as virt-api allows one VNC session at a time). `connect` opens the
/// websocket once the viewer is there.
pub async fn vnc<F, Fut>(listener: tokio::net::TcpListener, connect: F) -> Result<ExitCode, CliError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Socket, CliError>>,
{
    let (tcp, _) = listener.accept().await?;
    let socket = connect().await?;
    serve_viewer(socket, tcp).await.map(|()| ExitCode::SUCCESS)
}

/// Carry one viewer's TCP connection to and from the websocket.
pub async fn serve_viewer<S>(socket: WebSocketStream<S>, tcp: tokio::net::TcpStream) -> Result<(), CliError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tcp.into_split();
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(16);
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = rd.read(&mut buf).await {
            match buf.get(..n) {
                Some(chunk) if n > 0 && in_tx.send(chunk.to_vec()).await.is_ok() => {}
                _ => break,
            }
        }
    });
    let writer = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let result = relay(socket, in_rx, out_tx).await;
    reader.abort();
    let _ = writer.await;
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::result_large_err)]
    use super::*;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    /// A websocket server that stands where virt-api stands: it accepts only the
    /// console or VNC path of `ns/name` with KubeVirt's protocol, and sends back every
    /// message upper-cased.
    async fn virt_api(ns: &'static str, name: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let check = |req: &Request, mut res: Response| {
                        let path = req.uri().path().to_string();
                        let protocol = req.headers().get("sec-websocket-protocol").map(|h| h.to_str().unwrap().to_string());
                        let base = format!("/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/");
                        if !(path == format!("{base}console") || path == format!("{base}vnc")) || protocol.as_deref() != Some(PROTOCOL) {
                            let mut refusal = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(Some(format!("{path} {protocol:?}")));
                            *refusal.status_mut() = http::StatusCode::NOT_FOUND;
                            return Err(refusal);
                        }
                        res.headers_mut().insert("sec-websocket-protocol", PROTOCOL.parse().unwrap());
                        Ok(res)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else { return };
                    while let Some(Ok(msg)) = ws.next().await {
                        match msg {
                            Message::Binary(b) => ws.send(Message::Binary(b.to_ascii_uppercase().into())).await.unwrap(),
                            Message::Close(_) => break,
                            _ => {}
                        }
                    }
                });
            }
        });
        port
    }

    fn client(port: u16) -> Client {
        let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().unwrap());
        Client::try_from(config).unwrap()
    }

    #[tokio::test]
    async fn the_console_websocket_speaks_kubevirts_protocol_both_ways() {
        let port = virt_api("so-y-te", "web-1").await;
        let socket = open(&client(port), "so-y-te", "web-1", Stream::Console).await.unwrap();
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let relaying = tokio::spawn(relay(socket, in_rx, out_tx));
        in_tx.send(b"login: root\r".to_vec()).await.unwrap();
        assert_eq!(out_rx.recv().await.unwrap(), b"LOGIN: ROOT\r");
        drop(in_tx);
        relaying.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_refused_upgrade_is_an_error_with_the_code() {
        let port = virt_api("so-y-te", "web-1").await;
        let e = open(&client(port), "so-y-te", "other", Stream::Vnc).await.unwrap_err().to_string();
        assert!(e.contains("vnc of so-y-te/other refused the connection (404)"), "{e}");
    }

    #[tokio::test]
    async fn a_vnc_viewer_on_the_local_port_reaches_the_display() {
        let port = virt_api("so-y-te", "web-1").await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let c = client(port);
        let serving = tokio::spawn(async move { vnc(listener, || open(&c, "so-y-te", "web-1", Stream::Vnc)).await.map(|_| ()) });
        let mut viewer = tokio::net::TcpStream::connect(local).await.unwrap();
        viewer.write_all(b"rfb 003.008\n").await.unwrap();
        let mut got = vec![0u8; 12];
        viewer.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"RFB 003.008\n");
        drop(viewer);
        serving.await.unwrap().unwrap();
    }
}
