//! The typed client of Meta's Graph API (WhatsApp Cloud API): the only module that speaks
//! Graph. One pooled reqwest client with timeouts; base URL and version from configuration;
//! Meta's error envelope parsed into code, subcode, message, details and fbtrace id. The access
//! token travels only in the `Authorization` header and never appears in an error or a log.

mod admin;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// A Graph failure, classified for the outbox.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// Meta answered with its error envelope.
    #[error("Meta error {code}{}: {message}", subcode.map(|s| format!("/{s}")).unwrap_or_default())]
    Meta {
        status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
        kind: Option<String>,
        details: Option<String>,
        fbtrace_id: Option<String>,
        /// Meta's words for people (`error_user_title: error_user_msg`), on template errors.
        user_message: Option<String>,
    },
    /// The request may have reached Meta but no answer came back (timeout, dropped connection).
    #[error("no answer from Meta: {0}")]
    Unknown(String),
    /// The request never left (connection refused, DNS): safe to retry.
    #[error("cannot reach Meta: {0}")]
    Unreachable(String),
    /// Meta answered something that is not its documented shape.
    #[error("unexpected answer from Meta: {0}")]
    Decode(String),
}

impl GraphError {
    /// Meta's error code, when Meta answered.
    pub fn code(&self) -> Option<i64> {
        match self {
            GraphError::Meta { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Worth trying again later: throttling, Meta's transient errors, 5xx, a request that never left.
    pub fn retryable(&self) -> bool {
        match self {
            GraphError::Meta { status, code, .. } => {
                matches!(
                    code,
                    4 | 80007 | 130429 | 131056 | 131000 | 131016 | 131057 | 2 | 1
                ) || *status >= 500
                    || *status == 429
            }
            GraphError::Unreachable(_) => true,
            GraphError::Unknown(_) | GraphError::Decode(_) => false,
        }
    }

    /// What an agent should do, in plain words.
    pub fn advice(&self) -> String {
        match self.code() {
            Some(131047) => "More than 24 hours have passed since the customer last wrote: send a template instead.".into(),
            Some(131026) => "WhatsApp could not deliver to this number (not on WhatsApp, blocked, or an old app).".into(),
            Some(132000) => "The template's parameters do not match its variables.".into(),
            Some(132001) => "The template does not exist in this language or is not approved: sync templates.".into(),
            Some(190) => "The WhatsApp access token expired or was revoked: an admin must reconnect the number.".into(),
            Some(131050) => "The customer stopped marketing messages from this business.".into(),
            Some(131049) => "Meta held this marketing message back to protect the customer's experience; try again after a day.".into(),
            Some(130429) | Some(131056) => "WhatsApp is throttling this number; the message will be retried.".into(),
            Some(100) => format!("Meta refused a parameter: {self}"),
            _ => self.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    error_data: Option<Value>,
    #[serde(default)]
    fbtrace_id: Option<String>,
    #[serde(default)]
    error_user_title: Option<String>,
    #[serde(default)]
    error_user_msg: Option<String>,
}

/// Media metadata from `GET /{media-id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct MediaInfo {
    pub url: String,
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub file_size: Option<Value>,
}

/// The Graph client.
#[derive(Clone, Debug)]
pub struct Graph {
    http: reqwest::Client,
    base: String,
}

impl Graph {
    /// `graph_url` such as `https://graph.facebook.com`, `version` such as `v25.0`.
    pub fn new(graph_url: &str, version: &str) -> Graph {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent("Qontak/0.1")
            .build()
            .expect("the HTTP client builds with static settings");
        Graph {
            http,
            base: format!("{}/{}", graph_url.trim_end_matches('/'), version),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    async fn answer(res: Result<reqwest::Response, reqwest::Error>) -> Result<Value, GraphError> {
        let res = res.map_err(classify)?;
        let status = res.status().as_u16();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| GraphError::Unknown(without_url(e)))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| GraphError::Decode(e.to_string()));
        }
        match serde_json::from_slice::<Envelope>(&bytes) {
            Ok(Envelope { error }) => Err(GraphError::Meta {
                status,
                code: error.code,
                subcode: error.error_subcode,
                message: error.message,
                kind: error.kind,
                details: error
                    .error_data
                    .as_ref()
                    .and_then(|d| d.get("details"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                fbtrace_id: error.fbtrace_id,
                user_message: match (error.error_user_title, error.error_user_msg) {
                    (Some(t), Some(m)) => Some(format!("{t}: {m}")),
                    (t, m) => m.or(t),
                },
            }),
            Err(_) => Err(GraphError::Meta {
                status,
                code: 0,
                subcode: None,
                message: format!("HTTP {status} without Meta's error body"),
                kind: None,
                details: None,
                fbtrace_id: None,
                user_message: None,
            }),
        }
    }

    /// `POST /{phone-number-id}/messages`; answers the wamid Meta assigned.
    pub async fn send_message(
        &self,
        token: &str,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<String, GraphError> {
        let res = self
            .http
            .post(self.url(&format!("{phone_number_id}/messages")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await;
        let v = Self::answer(res).await?;
        v.pointer("/messages/0/id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GraphError::Decode("no messages[0].id in the send answer".into()))
    }

    /// Marks a message read (and optionally shows the typing indicator).
    pub async fn mark_read(
        &self,
        token: &str,
        phone_number_id: &str,
        wamid: &str,
        typing: bool,
    ) -> Result<(), GraphError> {
        let mut body =
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
        if typing {
            body["typing_indicator"] = json!({"type": "text"});
        }
        let res = self
            .http
            .post(self.url(&format!("{phone_number_id}/messages")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await;
        Self::answer(res).await.map(|_| ())
    }

    /// `GET /{media-id}`: a fresh download URL (it expires after five minutes).
    pub async fn media_info(&self, token: &str, media_id: &str) -> Result<MediaInfo, GraphError> {
        let v = Self::answer(
            self.http
                .get(self.url(media_id))
                .bearer_auth(token)
                .send()
                .await,
        )
        .await?;
        serde_json::from_value(v).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// Downloads media bytes from the URL `media_info` gave, with the bearer token.
    pub async fn download(&self, token: &str, url: &str) -> Result<Vec<u8>, GraphError> {
        let res = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(classify)?;
        let status = res.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(GraphError::Meta {
                status,
                code: 0,
                subcode: None,
                message: format!("media download answered HTTP {status}"),
                kind: None,
                details: None,
                fbtrace_id: None,
                user_message: None,
            });
        }
        Ok(res
            .bytes()
            .await
            .map_err(|e| GraphError::Unknown(without_url(e)))?
            .to_vec())
    }

    /// `POST /{phone-number-id}/media`: uploads a file so a message can name it by id (Meta then
    /// never has to reach our server); answers Meta's media id.
    pub async fn upload_media(
        &self,
        token: &str,
        phone_number_id: &str,
        bytes: Vec<u8>,
        mime: &str,
        filename: &str,
    ) -> Result<String, GraphError> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_string())
            .mime_str(mime)
            .map_err(|e| GraphError::Decode(e.to_string()))?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime.to_string())
            .part("file", part);
        let res = self
            .http
            .post(self.url(&format!("{phone_number_id}/media")))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await;
        let v = Self::answer(res).await?;
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GraphError::Decode("no id in the upload answer".into()))
    }

    /// `GET /{phone-number-id}`: the number as Meta describes it (name, quality, throughput).
    pub async fn phone_number(
        &self,
        token: &str,
        phone_number_id: &str,
    ) -> Result<Value, GraphError> {
        // `messaging_limit_tier` is deprecated in favour of the portfolio-wide
        // `whatsapp_business_manager_messaging_limit`; both are asked for, the newer one wins.
        let url = format!(
            "{}?fields=verified_name,display_phone_number,quality_rating,throughput,messaging_limit_tier,whatsapp_business_manager_messaging_limit",
            self.url(phone_number_id)
        );
        Self::answer(self.http.get(url).bearer_auth(token).send().await).await
    }

    /// Every message template of a WABA, following Meta's paging to the end.
    pub async fn templates(&self, token: &str, waba_id: &str) -> Result<Vec<Value>, GraphError> {
        let mut out = Vec::new();
        let mut url = format!(
            "{}?fields=name,status,category,language,components,quality_score,rejected_reason,parameter_format&limit=100",
            self.url(&format!("{waba_id}/message_templates"))
        );
        for _ in 0..1000 {
            let v = Self::answer(self.http.get(&url).bearer_auth(token).send().await).await?;
            if let Some(data) = v.get("data").and_then(Value::as_array) {
                out.extend(data.iter().cloned());
            }
            match v.pointer("/paging/next").and_then(Value::as_str) {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
        Ok(out)
    }
}

/// A reqwest error, classified by whether the request may have reached Meta.
fn classify(e: reqwest::Error) -> GraphError {
    if e.is_connect() || e.is_builder() {
        GraphError::Unreachable(without_url(e))
    } else {
        GraphError::Unknown(without_url(e))
    }
}

/// The error's text without its URL (a media URL carries a signature).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_server_errors_retry_and_permanent_errors_do_not() {
        let meta = |status, code| GraphError::Meta {
            status,
            code,
            subcode: None,
            message: String::new(),
            kind: None,
            details: None,
            fbtrace_id: None,
            user_message: None,
        };
        for (status, code) in [(429, 130429), (400, 131056), (500, 1), (503, 0), (400, 4)] {
            assert!(meta(status, code).retryable(), "{status}/{code}");
        }
        for (status, code) in [
            (400, 131047),
            (400, 131026),
            (400, 132000),
            (400, 132001),
            (400, 100),
            (401, 190),
        ] {
            assert!(!meta(status, code).retryable(), "{status}/{code}");
        }
        assert!(GraphError::Unreachable("x".into()).retryable());
        assert!(
            !GraphError::Unknown("timeout".into()).retryable(),
            "an unknown outcome is never blindly retried"
        );
        assert!(meta(400, 131047).advice().contains("template"));
    }
}
