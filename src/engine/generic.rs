//! Generic actions and probes that need no backend: `http` and `command`, so a drill against a
//! real service can check its health. Their output is JSON: http gives `status`, `latency_ms`
//! and `body` (parsed as JSON when it is JSON); command gives `exit_code`, `stdout`, `stderr`.

use crate::backend::ProviderError;
use crate::lang::action::{CommandCall, HttpCall};
use crate::lang::secrets::Redactor;
use serde_json::{Value as Json, json};
use std::sync::Once;

static TLS: Once = Once::new();

/// Install ring as the process-wide rustls provider (one provider for the whole build).
pub fn install_crypto_provider() {
    TLS.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Send the request `h` describes; `is_action` applies `expect_status` (default 2xx).
/// Secrets in the answer are masked by `redact` before the body is cut to 4 KiB (a cut must
/// never leave part of a secret behind).
pub async fn http(h: &HttpCall, is_action: bool, redact: &Redactor) -> Result<Json, ProviderError> {
    install_crypto_provider();
    let url = h.url.as_str();
    let method = h.method.as_str();
    let method_name = method;
    let timeout = h.timeout;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| ProviderError::failed(format!("cannot build HTTP client: {e}")))?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| ProviderError::invalid_input(e.to_string()))?;
    let mut req = client.request(method, url);
    for (k, v) in &h.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &h.body {
        req = req.json(b);
    }
    let started = std::time::Instant::now();
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            ProviderError::timed_out(format!("{method_name} {url}: no answer within {}", crate::lang::duration::format(timeout)))
        } else if e.is_connect() {
            ProviderError::unavailable(format!("{url}: cannot connect ({}); check the URL and that the service is reachable from here", root_cause(&e)))
        } else {
            ProviderError::unavailable(format!("{url}: {}", root_cause(&e)))
        }
    })?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .map_err(|e| ProviderError::unavailable(format!("{url}: reading the body: {e}")))?;
    let latency_ms = started.elapsed().as_millis() as u64;
    let text = redact.redact(&text);
    let body = serde_json::from_str::<Json>(&text)
        .unwrap_or(Json::String(text.chars().take(4096).collect()));
    let out = json!({"status": status, "latency_ms": latency_ms, "body": body});
    if is_action {
        let ok = match h.expect_status {
            Some(want) => status == want,
            None => (200..300).contains(&status),
        };
        if !ok {
            return Err(ProviderError::failed(format!("{url} answered {status}")));
        }
    }
    Ok(out)
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

/// Run the command `c` describes; `is_action` applies `expect_exit` (default 0).
/// Secrets in its output are masked by `redact` before the output is cut to 4 KiB.
pub async fn command(
    c: &CommandCall,
    is_action: bool,
    redact: &Redactor,
) -> Result<Json, ProviderError> {
    let argv = &c.run;
    let Some((prog, args)) = argv.split_first() else {
        return Err(ProviderError::invalid_input(
            "`run` is empty; give the program and its arguments".into(),
        ));
    };
    let timeout = c.timeout;
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(timeout, child).await {
        Err(_) => {
            return Err(ProviderError::timed_out(format!(
                "`{}` did not finish within {}; it was killed",
                argv.join(" "),
                crate::lang::duration::format(timeout)
            )));
        }
        Ok(Err(e)) => {
            let kind = match e.kind() {
                std::io::ErrorKind::NotFound => crate::backend::ErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => crate::backend::ErrorKind::Denied,
                _ => crate::backend::ErrorKind::Failed,
            };
            return Err(ProviderError::new(
                kind,
                format!("cannot run `{prog}`: {e}; check it is installed and on PATH"),
            )
            .with_source(e));
        }
        Ok(Ok(o)) => o,
    };
    let code = out.status.code().unwrap_or(-1);
    let trim = |b: &[u8]| {
        redact
            .redact(&String::from_utf8_lossy(b))
            .chars()
            .take(4096)
            .collect::<String>()
    };
    let res = json!({"exit_code": code, "stdout": trim(&out.stdout).trim_end(), "stderr": trim(&out.stderr).trim_end()});
    if is_action {
        let want = c.expect_exit;
        if code != want {
            return Err(ProviderError::failed(format!(
                "`{}` exited {code} (expected {want}): {}",
                argv.join(" "),
                res["stderr"].as_str().unwrap_or_default()
            )));
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn command_reports_exit_and_output() {
        let cmd = |v: Json| match crate::lang::action::Action::decode("command", &v).unwrap() {
            crate::lang::action::Action::Command(c) => c,
            _ => unreachable!(),
        };
        let ok = command(
            &cmd(json!({"run": ["sh", "-c", "echo hi; exit 3"]})),
            false,
            &Redactor::default(),
        )
        .await
        .unwrap();
        assert_eq!(ok["exit_code"], json!(3));
        assert_eq!(ok["stdout"], json!("hi"));
        let err = command(
            &cmd(json!({"run": ["sh", "-c", "exit 3"]})),
            true,
            &Redactor::default(),
        )
        .await
        .unwrap_err();
        assert!(err.message.contains("exited 3 (expected 0)"), "{err}");
        assert_eq!(err.kind, crate::backend::ErrorKind::Failed);
        let missing = command(
            &cmd(json!({"run": ["definitely-not-a-program-xyz"]})),
            true,
            &Redactor::default(),
        )
        .await
        .unwrap_err();
        assert!(missing.message.contains("cannot run"), "{missing}");
        assert_eq!(missing.kind, crate::backend::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn http_unreachable_endpoint_is_a_clear_error() {
        // Port 9 (discard) on loopback: nothing listens there.
        let h = match crate::lang::action::Action::decode(
            "http",
            &json!({"url": "http://127.0.0.1:9/health", "timeout": "2s"}),
        )
        .unwrap()
        {
            crate::lang::action::Action::Http(h) => h,
            _ => unreachable!(),
        };
        let err = http(&h, false, &Redactor::default()).await.unwrap_err();
        assert!(err.message.contains("cannot connect"), "{err}");
        assert_eq!(err.kind, crate::backend::ErrorKind::Unavailable);
    }
}
