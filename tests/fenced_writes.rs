//! The controller's writes are fenced by its lease (checked right before each request), so its
//! client must never send a request again on its own: an API server answering 503 with
//! `Retry-After` gets each write once from `k8s::fenced_client`, while the retrying client the
//! speaker uses (`k8s::client`) sends it again, which is what would land a status write after
//! another replica took over.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An API server that answers every request `503 Service Unavailable` with `Retry-After: 0`,
/// counting them.
async fn unavailable_api() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    // One response per complete request (headers, then Content-Length bytes).
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if seen.len() < end + 4 + length {
                            break;
                        }
                        seen.drain(..end + 4 + length);
                        counted.fetch_add(1, Ordering::SeqCst);
                        let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"unavailable","reason":"ServiceUnavailable","code":503}"#;
                        let response = format!(
                            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\n\
                             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (format!("http://{address}"), requests)
}

fn kubeconfig(server: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\n\
         users:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n\
         current-context: x\n"
    )
    .unwrap();
    file
}

/// Sends one status patch, as the controller writes a Service's address; returns how many
/// requests the server got for it.
async fn status_write(client: kube::Client, requests: &AtomicUsize) -> usize {
    let before = requests.load(Ordering::SeqCst);
    let services: Api<Service> = Api::namespaced(client, "shop");
    let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
                                   "metadata": {"resourceVersion": "7"}});
    let written = services
        .patch_status("web", &PatchParams::default(), &Patch::Merge(patch))
        .await;
    match written {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 503, "{status:?}"),
        other => panic!("expected the API's 503, got {other:?}"),
    }
    requests.load(Ordering::SeqCst) - before
}

#[tokio::test]
async fn the_controllers_client_sends_a_fenced_write_once_when_the_api_answers_503() {
    let (server, requests) = unavailable_api().await;
    let config = kubeconfig(&server);
    let fenced = ferrolb::k8s::fenced_client(Some(config.path()))
        .await
        .unwrap();
    let sent = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        status_write(fenced, &requests),
    )
    .await
    .expect("the fenced write fails at once instead of being sent again");
    assert_eq!(sent, 1);

    // The fault does make a retrying client send again: the speaker's client, the default
    // (its backoff runs for minutes, so the write is dropped once it has been sent twice).
    let retrying = ferrolb::k8s::client(Some(config.path())).await.unwrap();
    let before = requests.load(Ordering::SeqCst);
    let write = tokio::spawn({
        let requests = requests.clone();
        async move { status_write(retrying, &requests).await }
    });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while requests.load(Ordering::SeqCst) - before < 2 {
        assert!(
            tokio::time::Instant::now() < deadline && !write.is_finished(),
            "the retrying client never sent the write again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    write.abort();
}
