//! Meta's Graph API error envelope:
//! `{"error": {"message", "type", "code", "error_subcode"?, "error_data"?, "fbtrace_id"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;
use serde_json::{json, Map, Value};

/// One Graph API error, answered in Meta's envelope with Meta's HTTP status.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphError {
    pub status: StatusCode,
    pub message: String,
    pub kind: String,
    pub code: i64,
    pub subcode: Option<i64>,
    /// `error_data.details` (WhatsApp errors carry it).
    pub details: Option<String>,
    /// `error_user_title` and `error_user_msg` (template management errors carry them).
    pub user: Option<Box<(String, String)>>,
}

impl GraphError {
    /// A Meta error with a code; the HTTP status follows Meta's use of the code.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            status: status_for(code),
            message: message.into(),
            kind: "OAuthException".into(),
            code,
            subcode: None,
            details: None,
            user: None,
        }
    }

    /// `(#100) …` with `error_data.details`: a request parameter is missing or invalid.
    pub fn invalid_param(details: impl Into<String>) -> Self {
        let details = details.into();
        Self::new(100, format!("(#100) {details}")).with_details(details)
    }

    /// 401 code 190: the access token is missing, malformed or unknown.
    pub fn bad_token(message: &str) -> Self {
        Self::new(190, message)
    }

    /// Code 100 subcode 33: the node does not exist (or is not ours).
    pub fn unknown_object(method: &str, id: &str) -> Self {
        let verb = match method {
            "POST" => "post",
            "DELETE" => "delete",
            _ => "get",
        };
        let mut e = Self::new(
            100,
            format!(
                "Unsupported {verb} request. Object with ID '{id}' does not exist, cannot be \
                 loaded due to missing permissions, or does not support this operation. Please \
                 read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            ),
        )
        .with_subcode(33);
        e.kind = "GraphMethodException".into();
        e
    }

    /// Code 2500: a path the Graph API does not know.
    pub fn unknown_path(path: &str) -> Self {
        Self::new(2500, format!("Unknown path components: {path}"))
    }

    pub fn with_subcode(mut self, subcode: i64) -> Self {
        self.subcode = Some(subcode);
        self
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn with_user(mut self, title: impl Into<String>, msg: impl Into<String>) -> Self {
        self.user = Some(Box::new((title.into(), msg.into())));
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The envelope as JSON.
    pub fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("message".into(), json!(self.message));
        error.insert("type".into(), json!(self.kind));
        error.insert("code".into(), json!(self.code));
        if let Some(subcode) = self.subcode {
            error.insert("error_subcode".into(), json!(subcode));
        }
        if let Some(user) = &self.user {
            error.insert("is_transient".into(), json!(false));
            error.insert("error_user_title".into(), json!(user.0));
            error.insert("error_user_msg".into(), json!(user.1));
        }
        if let Some(details) = &self.details {
            error.insert(
                "error_data".into(),
                json!({"messaging_product": "whatsapp", "details": details}),
            );
        }
        error.insert("fbtrace_id".into(), json!(fbtrace_id()));
        json!({ "error": error })
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        // Meta sends this header on Graph errors; some clients read it.
        if let Ok(v) = format!("{}", self.code).parse() {
            response.headers_mut().insert("x-fb-error-code", v);
        }
        response
    }
}

/// The HTTP status Meta answers a code with.
pub fn status_for(code: i64) -> StatusCode {
    match code {
        190 => StatusCode::UNAUTHORIZED,
        4 | 80007 | 130429 | 131056 => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Meta's usual text for a code, used when a fault gives none.
pub fn default_message(code: i64) -> (&'static str, Option<&'static str>) {
    match code {
        4 => ("(#4) Application request limit reached", None),
        80007 => ("(#80007) Rate limit issues", None),
        130429 => (
            "(#130429) Rate limit hit",
            Some("Cloud API message throughput has been reached."),
        ),
        131056 => (
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            Some("Too many messages sent from the sender phone number to the same recipient phone number in a short period of time."),
        ),
        131047 => (
            "(#131047) Re-engagement message",
            Some("Message failed to send because more than 24 hours have passed since the customer last replied to this number."),
        ),
        131026 => (
            "(#131026) Message undeliverable",
            Some("Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number; the recipient has not accepted our new Terms of Service and Privacy Policy; the recipient is using an old WhatsApp version."),
        ),
        131048 => (
            "(#131048) Spam rate limit hit",
            Some("Message failed to send because there are restrictions on how many messages can be sent from this phone number."),
        ),
        131049 => (
            "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
            Some("In order to maintain a healthy ecosystem engagement, the message failed to be delivered."),
        ),
        131050 => (
            "(#131050) Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
            None,
        ),
        131052 => ("(#131052) Media download error", None),
        131053 => ("(#131053) Media upload error", None),
        131057 => ("(#131057) Account in maintenance mode", None),
        131000 => ("(#131000) Something went wrong", None),
        132000 => (
            "(#132000) Number of parameters does not match the expected number of params",
            None,
        ),
        132001 => ("(#132001) Template name does not exist in the translation", None),
        132015 => ("(#132015) Template is paused due to low quality so it cannot be sent in a template message", None),
        132016 => ("(#132016) Template has been paused too many times due to low quality and is now permanently disabled", None),
        133010 => ("(#133010) Account not registered", None),
        190 => ("Error validating access token: Session has expired.", None),
        368 => ("(#368) Temporarily blocked for policies violations", None),
        _ => ("(#100) Invalid parameter", None),
    }
}

/// Meta's `error.title` for a status webhook's `errors[]`.
pub fn title_for(code: i64) -> &'static str {
    match code {
        131047 => "Re-engagement message",
        131026 => "Message undeliverable",
        131049 => "This message was not delivered to maintain healthy ecosystem engagement.",
        131050 => "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
        131053 => "Media upload error",
        131052 => "Media download error",
        132015 => "Template is Paused",
        131000 => "Something went wrong",
        _ => "Message failed to send",
    }
}

/// A random trace id in Meta's style (23 url-safe characters).
fn fbtrace_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::rng();
    (0..23)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_metas_fields() {
        let body = GraphError::invalid_param("The parameter to is required.")
            .with_subcode(7)
            .body();
        let e = &body["error"];
        assert_eq!(e["message"], "(#100) The parameter to is required.");
        assert_eq!(e["type"], "OAuthException");
        assert_eq!(e["code"], 100);
        assert_eq!(e["error_subcode"], 7);
        assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
        assert_eq!(e["error_data"]["details"], "The parameter to is required.");
        assert_eq!(e["fbtrace_id"].as_str().unwrap().len(), 23);
    }

    #[test]
    fn rate_limits_answer_429_and_tokens_401() {
        assert_eq!(status_for(130429), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for(131056), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for(4), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for(190), StatusCode::UNAUTHORIZED);
        assert_eq!(status_for(131047), StatusCode::BAD_REQUEST);
    }
}
