//! A plain-HTTP client on the HTTPS port gets a 400 that says so, instead of a connection
//! reset it cannot explain.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const BODY: &str = "this port speaks HTTPS: use an https:// URL\n";

/// Answers 400 and closes; bounded in time and bytes read.
pub(super) async fn refuse_plain_http<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    metrics::counter!("shoal_http_plain_on_tls_total").increment(1);
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let answer = async {
        io.write_all(reply.as_bytes()).await?;
        io.shutdown().await?;
        // Drain what the client sent, so closing does not reset the connection (and with
        // it the reply) before the client has read it.
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            let n = io.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
}
